"""Segmentation losses for binary person masks, built by name with :func:`get_loss`.

Every loss takes LOGITS shaped (N, 1, H, W) and float targets in [0, 1] of the same shape (soft targets
work) and returns a scalar. Each is a small ``nn.Module`` over the pure functions in ``_functional``;
constructor kwargs are plain numbers/bools so a training config can rebuild the loss.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from personseg.losses._functional import drop_ignored
from personseg.losses.bce import BCELoss
from personseg.losses.bce_dice import BCEDiceLoss
from personseg.losses.dice import DiceLoss
from personseg.losses.focal import FocalLoss
from personseg.losses.lovasz import BoundaryLovaszLoss, LovaszLoss
from personseg.losses.tversky import TverskyLoss

__all__ = [
    "LOSSES",
    "DEFAULT_LOSS",
    "get_loss",
    "drop_ignored",
    "list_losses",
    "BCELoss",
    "BoundaryLovaszLoss",
    "BCEDiceLoss",
    "DiceLoss",
    "FocalLoss",
    "LovaszLoss",
    "TverskyLoss",
]

LOSSES: dict[str, type[nn.Module]] = {
    "bce": BCELoss,
    "dice": DiceLoss,
    "bce_dice": BCEDiceLoss,
    "focal": FocalLoss,
    "lovasz": LovaszLoss,
    "lovasz_boundary": BoundaryLovaszLoss,
    "tversky": TverskyLoss,
}

DEFAULT_LOSS = "bce_dice"


def list_losses() -> list[str]:
    """Names accepted by :func:`get_loss`."""
    return sorted(LOSSES)


def get_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered loss; ``kwargs`` go to its constructor (e.g. ``get_loss("tversky", beta=0.8)``)."""
    try:
        cls = LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; valid names: {', '.join(list_losses())}") from None
    return cls(**kwargs)
