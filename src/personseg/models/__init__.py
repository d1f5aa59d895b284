"""Segmentation models: the hand-written U-Net and smp architectures over timm encoders."""

import warnings
from typing import Any

from personseg.models._base import SegmentationModel
from personseg.models.checkpoint import (
    DEFAULT_META,
    build_meta,
    load_checkpoint,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from personseg.models.registry import MODELS, create_model, list_architectures, model_name

__all__ = [
    "DEFAULT_META",
    "MODELS",
    "SegmentationModel",
    "build_meta",
    "create_model",
    "list_architectures",
    "load_checkpoint",
    "make_checkpoint",
    "model_name",
    "read_checkpoint",
    "save_checkpoint",
]


def __getattr__(name: str) -> Any:
    # ``list_models`` was this list's earlier name; ``personseg.list_models`` is the shipped models, not these.
    if name == "list_models":
        warnings.warn(
            "personseg.models.list_models is now personseg.models.list_architectures",
            DeprecationWarning,
            stacklevel=2,
        )
        return list_architectures
    raise AttributeError(f"module 'personseg.models' has no attribute {name!r}")
