"""The trainable architectures: a plain dict from name to a constructor; ``create_model`` builds one by name.

(The models shipped for inference are another list: :mod:`personseg.inference.registry`.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from personseg.models._base import SegmentationModel
from personseg.models.smp_models import SmpModel
from personseg.models.unet import UNet


def _smp(arch: str) -> Callable[..., SegmentationModel]:
    def build(**kwargs: Any) -> SegmentationModel:
        kwargs.pop("arch", None)
        return SmpModel(arch=arch, **kwargs)

    build.__doc__ = f"segmentation_models_pytorch {arch} over a timm encoder"
    return build


MODELS: dict[str, Callable[..., SegmentationModel]] = {
    "unet": UNet,
    "deeplabv3plus": _smp("deeplabv3plus"),
    "smp_unet": _smp("smp_unet"),
    "fpn": _smp("fpn"),
}


def list_architectures() -> list[str]:
    """Architecture names accepted by :func:`create_model` (``personseg train --model``)."""
    return sorted(MODELS)


def create_model(name: str, **kwargs: Any) -> SegmentationModel:
    """Build a registered model; ``kwargs`` are its config (e.g. ``encoder="efficientnet_lite0"``)."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid names: {', '.join(list_architectures())}") from None
    return factory(**kwargs)


def model_name(model: SegmentationModel) -> str:
    """The registry name that rebuilds ``model``."""
    if isinstance(model, SmpModel):
        return model.config["arch"]
    for name, factory in MODELS.items():
        if factory is type(model):
            return name
    raise KeyError(f"{type(model).__name__} is not registered")
