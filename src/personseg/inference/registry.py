"""The models shipped inside the package: name -> file in ``personseg/weights/`` + its sha256.

(The architectures a model can be trained as are another list: :mod:`personseg.models.registry`.)

A shipped file is loaded only if its sha256 matches the one recorded here, so a truncated download or a
swapped file is refused instead of silently giving bad masks. The preprocessing is not recorded here: it
travels inside the ONNX file's metadata (``input_size`` below is informational, for ``personseg models``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from personseg.data.download import ChecksumError, file_digest

#: Folder the shipped ``.onnx`` files live in.
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


@dataclass(frozen=True)
class ShippedModel:
    """One model file shipped with the package."""

    filename: str
    """File name inside :data:`WEIGHTS_DIR`."""
    sha256: str
    """Hex sha256 of the file; an empty string means no file has been released under this name yet."""
    description: str
    """One line for ``personseg models``."""
    input_size: tuple[int, int]
    """[height, width] the network sees (the file's own metadata is what inference uses)."""


SHIPPED_MODELS: dict[str, ShippedModel] = {
    "personseg-default": ShippedModel(
        filename="personseg-default.onnx",
        sha256="60a1522b754dbdd426170e4388d59b92d821f8adb6cb7aa695a6d805a7ddebd2",
        description="best quality (EfficientNet-Lite2), int8, each photo at its own shape within 320x320 pixels, with "
        "a second look at the people: for photos",
        input_size=(320, 320),
    ),
    "personseg-fast": ShippedModel(
        filename="personseg-fast.onnx",
        sha256="5d68f5dc38459880a7639b5625ce17a1c2ac72aa30f41bf729c0a8c6b8bb3b9e",
        description="EfficientNet-Lite2 to stride 32 at 256x192 turned to the frame (stretched), int8: for live "
        "video and slow CPUs",
        input_size=(256, 192),
    ),
}

DEFAULT_MODEL = "personseg-default"


def list_shipped_models() -> list[str]:
    """Names :func:`personseg.load_model` accepts (shipped models; installed or not, see ``personseg models``)."""
    return list(SHIPPED_MODELS)


class ModelNotInstalledError(FileNotFoundError):
    """A registered model whose file is not in the package."""


# (path, size, mtime_ns) of files already verified, so a cached model is not re-hashed on every load.
_verified: set[tuple[str, int, int]] = set()


def shipped_model_path(name: str) -> Path:
    """Path of the shipped model ``name`` after checking that it is installed and its sha256 matches."""
    try:
        entry = SHIPPED_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; shipped models: {', '.join(SHIPPED_MODELS)}") from None
    path = WEIGHTS_DIR / entry.filename
    if not path.is_file():
        raise ModelNotInstalledError(
            f"model {name!r} is not installed: {path} does not exist; reinstall personseg, or pass the "
            "path of a .onnx export / .pt checkpoint instead"
        )
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return path
    if not entry.sha256:
        raise ChecksumError(f"model {name!r}: no sha256 is recorded for {path}, so it cannot be verified")
    actual = file_digest(path)
    if actual != entry.sha256.lower():
        raise ChecksumError(
            f"model {name!r}: {path} has sha256 {actual}, expected {entry.sha256}; the file is corrupt or "
            "was replaced: reinstall personseg"
        )
    _verified.add(key)
    return path
