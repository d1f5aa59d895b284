"""The HTTP API (FastAPI) and the web UI (Gradio) of personseg: ``pip install 'personseg[serve]'`` / ``[ui]``.

``create_app()`` builds the API app (``personseg serve`` runs it with uvicorn); ``personseg.serve.ui.build_ui()``
builds the Gradio interface that ``create_app(with_ui=True)`` mounts at ``/ui``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import personseg.serve` works (and says what to install) before fastapi is imported.
    if name == "create_app":
        from personseg.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'personseg.serve' has no attribute {name!r}")
