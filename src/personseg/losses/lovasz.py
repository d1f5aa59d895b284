"""Lovasz hinge: a convex surrogate that optimises the IoU of each image directly."""

from __future__ import annotations

import torch
from torch import nn

from personseg.losses._functional import check_inputs, contour_band, lovasz_hinge, lovasz_hinge_within


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


class BoundaryLovaszLoss(nn.Module):
    """Per-image Lovasz hinge plus ``band_weight`` times the same hinge over the band around each label's
    contour (``ratio`` of the diagonal, both sides): a surrogate for the boundary IoU the benchmark scores.

    Where the whole-image hinge lets a missed sleeve or foot cost a few pixels of a large person, inside
    the band they are a large share of the union. Soft targets are binarised at 0.5.
    """

    def __init__(self, band_weight: float = 1.0, ratio: float = 0.02) -> None:
        super().__init__()
        if band_weight < 0 or not 0 < ratio < 0.5:
            raise ValueError(f"band_weight={band_weight} must be >= 0 and ratio={ratio} in (0, 0.5)")
        self.band_weight = band_weight
        self.ratio = ratio

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = check_inputs(logits, target)
        whole = lovasz_hinge(logits, target, per_image=True)
        band = contour_band(target, self.ratio)
        return whole + self.band_weight * lovasz_hinge_within(logits, target, band)

    def extra_repr(self) -> str:
        return f"band_weight={self.band_weight}, ratio={self.ratio}"
