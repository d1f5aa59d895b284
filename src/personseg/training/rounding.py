"""Training against the weights the int8 export will ship: each convolution's weights rounded per output channel.

The shipped files keep 7 bits of each int8 weight (``personseg.export.quantize``). Rounding only the weights of the
shipped default to that grid, in its float graph, costs coco_train what the whole int8 file does (0.607 -> 0.589
IoU; the int8 file 0.593; docs/experiments.md, session 36): the activations are not the loss. Training with the
rounded weights in the forward pass lets the network settle where rounding no longer moves it: after two epochs of
it (default v22) the int8 file scores 0.615 on coco_train where its float weights score 0.619.

:class:`WeightRounding` rounds the weights in place for one step's forward and backward and then puts the float
weights back, so the optimizer updates the float ("latent") weights with the gradient taken at the rounded point
(the straight-through estimate). Checkpoints keep plain float weights under their usual names; the export rounds
them again the same way.
"""

from __future__ import annotations

import torch
from torch import nn


def round_per_channel(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """``weight`` (output channels first) on a symmetric grid with one scale per output channel, as ONNX Runtime
    quantizes int8 weights: -L..L times max|w| / L, with L = 64 for 7 bits (``reduce_range``) and 127 for 8."""
    levels = min(2 ** (bits - 1), 127)
    flat = weight.reshape(weight.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp_min(torch.finfo(weight.dtype).tiny) / levels
    scale = scale.reshape(-1, *([1] * (weight.dim() - 1)))
    return torch.round(weight / scale).clamp(-levels, levels) * scale


class WeightRounding:
    """Rounds every convolution's weights of ``model`` to ``bits`` bits while the ``with`` block runs.

    Run the forward pass and ``backward()`` inside the block and the optimizer step after it::

        with rounding:
            loss = loss_fn(model(x), y)
            loss.backward()
        optimizer.step()
    """

    def __init__(self, model: nn.Module, bits: int) -> None:
        if not 2 <= bits <= 8:
            raise ValueError(f"weight rounding needs 2-8 bits, got {bits}")
        self.bits = bits
        self.weights = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
        if not self.weights:
            raise ValueError(f"{type(model).__name__} has no convolutions whose weights could be rounded")
        self._saved: list[torch.Tensor] | None = None

    @torch.no_grad()
    def __enter__(self) -> WeightRounding:
        if self._saved is not None:
            raise RuntimeError("WeightRounding is already active")
        self._saved = [w.detach().clone() for w in self.weights]
        for w in self.weights:
            w.copy_(round_per_channel(w, self.bits))
        return self

    @torch.no_grad()
    def __exit__(self, *exc) -> None:
        for w, saved in zip(self.weights, self._saved or [], strict=True):
            w.copy_(saved)
        self._saved = None
