"""Base class every personseg model derives from: input padding, parameter count, serializable config."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class SegmentationModel(nn.Module):
    """Owns ``forward``: pads the input to the network's stride, runs ``forward_features``, crops back.

    Subclasses call ``super().__init__(**kwargs)`` with exactly their constructor kwargs; those are the model's
    config and must be plain strings/numbers/bools so a checkpoint can rebuild the model from them.
    """

    #: Input height and width must be a multiple of this inside ``forward_features``.
    stride: int = 32

    def __init__(self, **config: Any) -> None:
        super().__init__()
        for key, value in config.items():
            if not isinstance(value, str | int | float | bool | type(None)):
                raise TypeError(f"model config {key}={value!r} must be a str, int, float, bool or None")
        self.config: dict[str, Any] = dict(config)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, classes, H, W) for an input of shape (N, C, H, W), any H and W."""
        h, w = x.shape[-2:]
        s = self.stride
        pad_h, pad_w = (-h) % s, (-w) % s
        if pad_h or pad_w:
            # Reflect keeps statistics near the border closer to the image than zeros would.
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        out = self.forward_features(x)
        if pad_h or pad_w:
            out = out[..., :h, :w]
        return out

    def get_num_params(self, trainable_only: bool = False) -> int:
        """Number of parameters (all, or only those with ``requires_grad``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
