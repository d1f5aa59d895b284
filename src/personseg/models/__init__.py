"""Segmentation models: the hand-written U-Net and smp architectures over timm encoders."""

from personseg.models._base import SegmentationModel
from personseg.models.checkpoint import (
    DEFAULT_META,
    build_meta,
    load_checkpoint,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from personseg.models.registry import MODELS, create_model, list_models, model_name

__all__ = [
    "DEFAULT_META",
    "MODELS",
    "SegmentationModel",
    "build_meta",
    "create_model",
    "list_models",
    "load_checkpoint",
    "make_checkpoint",
    "model_name",
    "read_checkpoint",
    "save_checkpoint",
]
