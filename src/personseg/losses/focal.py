"""Focal loss: BCE that down-weights pixels the model already gets right, focusing on hard edges."""

from __future__ import annotations

import torch
from torch import nn

from personseg.losses._functional import check_inputs, focal_loss_with_logits


class FocalLoss(nn.Module):
    """Mean focal loss over all pixels; ``gamma=0`` and ``alpha=None`` give plain BCE.

    ``alpha`` weighs person pixels (``1 - alpha`` background). It defaults to None rather than the
    detection value 0.25, because people are usually not the rare class in a person-segmentation crop.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1] or None, got {alpha}")
        self.gamma = gamma
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = check_inputs(logits, target)
        return focal_loss_with_logits(logits, target, self.gamma, self.alpha).mean()

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}"
