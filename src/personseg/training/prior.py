"""Temporal models (``--temporal``): the previous frame's probability as a fourth input channel.

A video network that sees where the person was a frame ago can keep its mask steady where the frame barely changed
and still follow real motion. Training needs no video: :func:`synthetic_prior` makes a plausible "previous frame's
prediction" from each sample's label, moved and reshaped as one frame of motion would (shift, scale, rotation,
a grown or shrunk edge), softened as a network's output is, sometimes from another image (a scene cut) and
sometimes empty (the first frame, or a photo), so the network learns to use the prior without trusting it blindly.

A prior made from the label is always close to the truth, so a model trained on it learns to use the prior as a
hint, not to hold still what did not move (session 8: no steadier than the per-frame model). ``--temporal-prior
self`` gives the model, in training, what it is given in a video: :func:`previous_frame` moves each batch one frame
back in time (a small camera motion and the small photometric change between consecutive frames), the model's own
prediction there (with an empty prior, no gradient) becomes the prior, and :func:`temporal_loss` charges the change
it then makes that the labels do not make, the benchmark's temporal error.

Validation runs with an empty prior: the figure that picks the checkpoint is single-frame quality, what the
model does on the first frame of a clip and on photos.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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
    prior = _moved(labels, _motion(b, device), "zeros")
    uniform = _uniform(b, device)

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

    return _first_frames_and_cuts(prior)[0]


def previous_frame(x: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch one frame earlier: normalised images ``x`` (B x C x H x W) and their ``masks`` (B x 1 x H x W,
    -1 for unknown pixels) moved by a small camera motion (at most half a synthetic prior's: shift, scale,
    rotation; borders reflected), with the brightness, contrast and sensor noise a frame later differs by."""
    b, device = x.shape[0], x.device
    theta = _motion(b, device, 0.5)
    moved = _moved(x.float(), theta, "reflection")
    uniform = _uniform(b, device)
    gain, offset = uniform(0.95, 1.05).view(b, 1, 1, 1), uniform(-0.05, 0.05).view(b, 1, 1, 1)
    moved = moved * gain + offset + 0.02 * torch.randn_like(moved)
    unknown = _moved((masks < 0).float(), theta, "reflection") > 0.5
    labels = _moved(masks.float().clamp(min=0.0), theta, "reflection").masked_fill(unknown, -1.0)
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return moved.to(x.dtype).contiguous(memory_format=layout), labels


@torch.no_grad()
def self_prior(
    model: torch.nn.Module, x: torch.Tensor, masks: torch.Tensor, autocast, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The model's own prediction on :func:`previous_frame` of the batch (empty prior, eval mode, no gradient), as
    the prior for the batch itself; a share of samples gets no prior (first frames) or another sample's (cuts).
    Returns (prior, the previous frame's labels, 1 where the prior is the sample's own previous frame else 0)."""
    earlier, earlier_masks = previous_frame(x, masks)
    modes = [(module, module.training) for module in model.modules()]  # each its own: --train-only's frozen norms
    model.eval()
    try:
        with autocast():
            prior = torch.sigmoid(model(with_prior(earlier, None, channels_last)).float())
    finally:
        for module, training in modes:
            module.train(training)
    prior, own = _first_frames_and_cuts(prior)
    return prior, earlier_masks, own


def temporal_loss(
    prob: torch.Tensor, prior: torch.Tensor, masks: torch.Tensor, earlier_masks: torch.Tensor, own: torch.Tensor
) -> torch.Tensor:
    """Mean |(p_t - p_t-1) - (g_t - g_t-1)| over the known pixels of the samples whose prior is their own previous
    frame (``own``, B values of 0 or 1), where the prior was right (on the label's side of 0.5): the change the
    model makes that the truth does not. Pixels the prior got wrong are left to the task loss, so the model is
    never asked to hold on to its own mistakes. Weigh it low (0.3): at 1 a model trained from scratch settles on
    an empty mask, which never changes."""
    right = (prior > 0.5) == (earlier_masks > 0.5)
    known = ((masks >= 0) & (earlier_masks >= 0) & right).float() * own.view(-1, 1, 1, 1)
    change = (prob - prior) - (masks.clamp(min=0.0) - earlier_masks.clamp(min=0.0))
    return (change.abs() * known).sum() / known.sum().clamp(min=1.0)


def _uniform(b: int, device: torch.device) -> Callable[[float, float], torch.Tensor]:
    return lambda low, high: torch.empty(b, device=device).uniform_(low, high)


def _motion(b: int, device: torch.device, fraction: float = 1.0) -> torch.Tensor:
    """B x 2 x 3 affine matrices of at most ``fraction`` of one frame of motion (MAX_SHIFT, MAX_SCALE, MAX_ROTATION)."""
    uniform = _uniform(b, device)
    angle = uniform(-MAX_ROTATION * fraction, MAX_ROTATION * fraction) * (math.pi / 180.0)
    scale = 1.0 + uniform(-MAX_SCALE * fraction, MAX_SCALE * fraction)
    shift = 2 * MAX_SHIFT * fraction  # grid units span 2 per image side
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0] = scale * torch.cos(angle)
    theta[:, 0, 1] = -scale * torch.sin(angle)
    theta[:, 1, 0] = scale * torch.sin(angle)
    theta[:, 1, 1] = scale * torch.cos(angle)
    theta[:, 0, 2] = uniform(-shift, shift)
    theta[:, 1, 2] = uniform(-shift, shift)
    return theta


def _moved(t: torch.Tensor, theta: torch.Tensor, padding: str) -> torch.Tensor:
    grid = F.affine_grid(theta, list(t.shape), align_corners=False)
    return F.grid_sample(t, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _first_frames_and_cuts(prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """EMPTY_SHARE of the priors emptied (first frames, photos), CUT_SHARE swapped for another sample's (scene
    cuts). Returns the priors and, per sample, 1 where the prior is still the sample's own else 0."""
    b = prior.shape[0]
    draw = torch.rand(b, device=prior.device)
    cut, empty = draw < CUT_SHARE, draw > 1.0 - EMPTY_SHARE
    prior = torch.where(cut.view(b, 1, 1, 1), prior.roll(1, dims=0), prior)
    prior = torch.where(empty.view(b, 1, 1, 1), torch.zeros_like(prior), prior)
    return prior, (~(cut | empty)).float()


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
