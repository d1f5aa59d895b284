"""Lovasz hinge: a convex surrogate that optimises the IoU of each image directly."""

from __future__ import annotations

import torch
from torch import nn

from personseg.losses._functional import check_inputs, lovasz_hinge


class LovaszLoss(nn.Module):
    """Lovasz hinge loss (Berman et al. 2018), averaged over images by default.

    Best used to fine-tune a model first trained with BCE/Dice: from scratch its sparse gradients (only
    pixels with positive hinge error count) make training slow. Soft targets are binarised at 0.5.
    """

    def __init__(self, per_image: bool = True) -> None:
        super().__init__()
        self.per_image = per_image

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = check_inputs(logits, target)
        return lovasz_hinge(logits, target, per_image=self.per_image)

    def extra_repr(self) -> str:
        return f"per_image={self.per_image}"
