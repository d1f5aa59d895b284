"""personseg: find the people in photos and videos and remove or replace the background.

The public API is small and torch-free (inference runs on ONNX Runtime)::

    import personseg
    model = personseg.load_model()            # the default model shipped in the package
    alpha = model.predict(rgb)                # HxW float32 in [0, 1] at the input's size
    cutout = personseg.remove_background("photo.jpg")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "remove_background", "list_models"]


def __getattr__(name: str) -> Any:
    # Imported lazily so `import personseg` stays cheap and never pulls in torch.
    if name == "load_model":
        from personseg.inference.api import load_model

        return load_model
    if name == "list_models":  # the shipped models (not the trainable architectures of personseg.models)
        from personseg.inference.registry import list_shipped_models

        return list_shipped_models
    if name == "remove_background":
        from personseg.inference.remove import remove_background

        return remove_background
    raise AttributeError(f"module 'personseg' has no attribute {name!r}")
