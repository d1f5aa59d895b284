"""Tversky loss: Dice with separate weights for false positives and false negatives."""

from __future__ import annotations

import torch
from torch import nn

from personseg.losses._functional import check_inputs, soft_tversky_score


class TverskyLoss(nn.Module):
    """``(1 - Tversky index) ** gamma`` with ``TI = TP / (TP + alpha FP + beta FN)`` on soft counts.

    The defaults ``alpha=0.3, beta=0.7`` (Salehi et al. 2017) penalise missed person pixels more than
    spurious ones, trading precision for recall; ``alpha = beta = 0.5`` is the Dice loss. ``gamma`` > 1
    gives the focal Tversky loss. Sums are pooled over the batch unless ``per_image``.
    """

    def __init__(
        self,
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma: float = 1.0,
        smooth: float = 1.0,
        eps: float = 1e-7,
        per_image: bool = False,
    ) -> None:
        super().__init__()
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise ValueError(f"alpha={alpha} and beta={beta} must be >= 0 and not both 0")
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.smooth = smooth
        self.eps = eps
        self.per_image = per_image

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = check_inputs(logits, target)
        score = soft_tversky_score(
            logits.sigmoid(), target, self.alpha, self.beta, self.smooth, self.eps, self.per_image
        )
        # clamp: rounding can leave 1 - score a hair below 0, and a fractional power of that is NaN.
        return (1.0 - score).clamp_min(0.0).pow(self.gamma).mean()

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, smooth={self.smooth}, "
            f"per_image={self.per_image}"
        )
