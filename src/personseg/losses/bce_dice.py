"""BCE + soft Dice, the default training loss: per-pixel calibration plus a region-overlap term."""

from __future__ import annotations

import torch
from torch import nn

from personseg.losses.bce import BCELoss
from personseg.losses.dice import DiceLoss


class BCEDiceLoss(nn.Module):
    """``bce_weight * BCE + dice_weight * (1 - soft Dice)``; equal weights by default.

    BCE gives well-behaved gradients everywhere (and calibrated probabilities); Dice counteracts the class
    imbalance when people cover a small part of the image.
    """

    def __init__(
        self,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        per_image: bool = False,
        pos_weight: float | None = None,
    ) -> None:
        super().__init__()
        if bce_weight < 0 or dice_weight < 0 or bce_weight + dice_weight == 0:
            raise ValueError(f"bce_weight={bce_weight} and dice_weight={dice_weight} must be >= 0 and not both 0")
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.bce = BCELoss(pos_weight=pos_weight)
        self.dice = DiceLoss(smooth=smooth, per_image=per_image)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.bce_weight * self.bce(logits, target) + self.dice_weight * self.dice(logits, target)

    def extra_repr(self) -> str:
        return f"bce_weight={self.bce_weight}, dice_weight={self.dice_weight}"
