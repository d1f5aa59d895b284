"""Binary cross-entropy on logits: the per-pixel baseline every other loss is compared against."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from personseg.losses._functional import check_inputs


class BCELoss(nn.Module):
    """Mean binary cross-entropy over all pixels, computed from logits for numerical stability.

    ``pos_weight`` (> 1) up-weights person pixels, for data where people are small; None means 1.
    """

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = check_inputs(logits, target)
        pos_weight = None
        if self.pos_weight is not None:
            pos_weight = torch.tensor(self.pos_weight, dtype=logits.dtype, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)

    def extra_repr(self) -> str:
        return f"pos_weight={self.pos_weight}"
