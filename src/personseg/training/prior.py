"""Temporal models (``--temporal``): the previous frame's probability as a fourth input channel.

A video network that sees where the person was a frame ago can keep its mask steady where the frame barely changed
and still follow real motion. Training needs no video: :func:`synthetic_prior` makes a plausible "previous frame's
prediction" from each sample's label, moved and reshaped as one frame of motion would (shift, scale, rotation,
a grown or shrunk edge), softened as a network's output is, sometimes from another image (a scene cut) and
sometimes empty (the first frame, or a photo), so the network learns to use the prior without trusting it blindly.

Validation runs with an empty prior: the figure that picks the checkpoint is single-frame quality, what the
model does on the first frame of a clip and on photos.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Share of samples with no prior at all (the first frame, a photo), and of samples whose prior is another image's
#: (a scene cut the stabiliser did not catch).
EMPTY_SHARE = 0.2
CUT_SHARE = 0.05
#: One frame of motion, at most: shift (fraction of the size), scale change, rotation in degrees.
MAX_SHIFT, MAX_SCALE, MAX_ROTATION = 0.06, 0.08, 5.0
#: How far the edge may grow or shrink, and how soft it is (fractions of the image side: 4 and 3 px at 320).
MAX_EDGE, SOFT_EDGE = 0.013, 0.008


def synthetic_prior(masks: torch.Tensor) -> torch.Tensor:
    """A fake previous-frame probability (B x 1 x H x W in [0, 1]) for each label in ``masks`` (B x 1 x H x W;
    pixels marked unknown, -1, count as background). Draws from torch's global generator."""
    b = masks.shape[0]
    device = masks.device
    labels = masks.float().clamp(min=0.0)

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.empty(b, device=device).uniform_(low, high)

    angle = uniform(-MAX_ROTATION, MAX_ROTATION) * (math.pi / 180.0)
    scale = 1.0 + uniform(-MAX_SCALE, MAX_SCALE)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0] = scale * torch.cos(angle)
    theta[:, 0, 1] = -scale * torch.sin(angle)
    theta[:, 1, 0] = scale * torch.sin(angle)
    theta[:, 1, 1] = scale * torch.cos(angle)
    theta[:, 0, 2] = uniform(-2 * MAX_SHIFT, 2 * MAX_SHIFT)  # grid units span 2 per image side
    theta[:, 1, 2] = uniform(-2 * MAX_SHIFT, 2 * MAX_SHIFT)
    grid = F.affine_grid(theta, list(labels.shape), align_corners=False)
    prior = F.grid_sample(labels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    side = min(labels.shape[-2:])
    radius = int(round(float(torch.empty(()).uniform_(0.0, MAX_EDGE)) * side))  # an edge one frame off
    if radius > 0:
        k = 2 * radius + 1
        if torch.rand(()) < 0.5:
            prior = F.max_pool2d(prior, k, 1, radius)  # grown
        else:
            prior = -F.max_pool2d(-prior, k, 1, radius)  # shrunk
    soft = max(1, round(SOFT_EDGE * side))
    prior = F.avg_pool2d(prior, 2 * soft + 1, 1, soft, count_include_pad=False)  # a network's soft edge
    high, low = uniform(0.6, 1.0).view(b, 1, 1, 1), uniform(0.0, 0.15).view(b, 1, 1, 1)
    prior = prior * high + (1.0 - prior) * low  # not fully confident either way
    prior = (prior + 0.03 * torch.randn_like(prior)).clamp(0.0, 1.0)

    draw = torch.rand(b, device=device).view(b, 1, 1, 1)
    other = prior.roll(1, dims=0)
    prior = torch.where(draw < CUT_SHARE, other, prior)
    return torch.where(draw > 1.0 - EMPTY_SHARE, torch.zeros_like(prior), prior)


def with_prior(x: torch.Tensor, prior: torch.Tensor | None, channels_last: bool = False) -> torch.Tensor:
    """The network input: the normalised frame and its prior (``None``: empty, as on a first frame or a photo)."""
    if prior is None:
        prior = torch.zeros_like(x[:, :1])
    out = torch.cat([x, prior.to(x.dtype)], dim=1)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def adapt_input_channels(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state`` (a 3-channel checkpoint's weights) fitted to ``model`` with a prior channel: each weight that
    takes one input channel fewer than the model's gets a zero slice for the prior, so the model starts out
    exactly as the checkpoint did and learns how much to use the prior."""
    own = model.state_dict()
    out = dict(state)
    for key, value in state.items():
        target = own.get(key)
        if target is None or target.shape == value.shape or value.dim() != 4:
            continue
        if (
            target.shape[0] == value.shape[0]
            and target.shape[1] == value.shape[1] + 1
            and target.shape[2:] == value.shape[2:]
        ):
            out[key] = torch.cat([value, torch.zeros_like(value[:, :1])], dim=1)
    return out
