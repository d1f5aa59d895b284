"""Non-square training batches: the shapes resize "fit" gives the network at inference.

A network trained only on squares does worse on the short, wide inputs ``resize="fit"`` makes of landscape photos
(session 18: the v8 default, float, on davis_people's breakdance-flare: 0.772 IoU at a 384 square letterbox, 0.681
at 224x416 with more of the photo's pixels). With ``shape_crops`` set, that share of training batches is cut to a
random non-square window before the network sees it, the same window for the images, the masks and a teacher's
probabilities: one side is kept, the other cut to a multiple of ``stride`` between half of it and one stride less.
"""

from __future__ import annotations

import torch


def shape_crop(tensors: list[torch.Tensor | None], stride: int = 32) -> list[torch.Tensor | None]:
    """``tensors`` (N x C x H x W, all the same H and W; None passes through) cut to one random window that keeps
    either the full height or the full width; unchanged when the side is too small to cut. Draws from torch's
    global generator (seeded and saved with the run)."""
    h, w = next(t for t in tensors if t is not None).shape[-2:]
    tall = bool(torch.randint(2, (1,)).item())  # a tall window keeps the height and cuts the width
    side = w if tall else h
    sizes = list(range(max(stride, side // 2 // stride * stride), side, stride))
    if not sizes:
        return tensors
    cut = sizes[int(torch.randint(len(sizes), (1,)).item())]
    start = int(torch.randint(side - cut + 1, (1,)).item())
    window = (slice(None), slice(start, start + cut)) if tall else (slice(start, start + cut), slice(None))
    return [None if t is None else t[..., window[0], window[1]] for t in tensors]
