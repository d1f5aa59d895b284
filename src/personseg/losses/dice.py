"""Soft Dice loss: optimises overlap directly, so it does not care how much of the image is background."""

from __future__ import annotations

import torch
from torch import nn

from personseg.losses._functional import check_inputs, soft_dice_score


class DiceLoss(nn.Module):
    """``1 - soft Dice`` between ``sigmoid(logits)`` and the target.

    By default the sums are pooled over the whole batch (one Dice per batch), which is stable when some
    images have no person. ``per_image=True`` averages per-image Dice instead. ``smooth`` is added to
    numerator and denominator: it keeps an empty target with an empty prediction at loss ~0 (no NaN) while
    still pushing stray foreground towards zero on person-free images.

    With soft targets the minimum is reached by a prediction sharper than the target; use BCE alongside
    (see ``bce_dice``) when the soft edges themselves should be matched.
    """

    def __init__(self, smooth: float = 1.0, eps: float = 1e-7, per_image: bool = False) -> None:
        super().__init__()
        self.smooth = smooth
        self.eps = eps
        self.per_image = per_image

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = check_inputs(logits, target)
        score = soft_dice_score(logits.sigmoid(), target, self.smooth, self.eps, self.per_image)
        return (1.0 - score).mean()

    def extra_repr(self) -> str:
        return f"smooth={self.smooth}, eps={self.eps}, per_image={self.per_image}"
