"""Fewer hidden channels in a trained network's inverted-residual blocks, without training.

Each block of an EfficientNet-Lite encoder widens its input 6x (``conv_pw``), filters every channel on its own
(``conv_dw``), and projects back (``conv_pwl``); the widened channels carry most of the block's cost. On real
photos run through the network many of them add little to the projection, and the others can stand in for
them: :func:`prune_hidden_channels` goes through the blocks in order, keeps the channels whose contribution to the
projection is largest (mean square activation times the squared norm of its column of the projection), and
refits the projection by least squares so that the narrowed block, fed what the narrowed network before it
gives it, answers what the whole block answered in the whole network. A constant term goes into the batch norm
that follows, so channels that stay constant (dead after ReLU6, or always at its ceiling) leave no trace.

The result is a network of the same architecture with ``hidden_widths`` in its config
(:class:`personseg.models.smp_models.SmpModel`), which a checkpoint rebuilds and ``personseg export`` exports.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence

import torch

from personseg.models.smp_models import format_hidden_widths, narrow_block, parse_hidden_widths

log = logging.getLogger(__name__)


class _Stop(Exception):
    """Raised by a hook once the activations wanted are in hand: the rest of the network need not run."""


def expanding_blocks(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """``("STAGE.BLOCK", block)`` for every block of ``model``'s timm encoder that has hidden channels to narrow."""
    encoder = getattr(model, "timm_encoder", None)
    if encoder is None or not hasattr(encoder, "blocks"):
        raise ValueError("pruning hidden channels needs an smp architecture over a timm EfficientNet-style encoder")
    return [
        (f"{s}.{b}", block)
        for s, stage in enumerate(encoder.blocks)
        for b, block in enumerate(stage)
        if hasattr(block, "conv_pwl") and hasattr(block, "conv_pw")
    ]


@torch.no_grad()
def hidden_activations(
    model: torch.nn.Module, block: torch.nn.Module, inputs: Sequence[torch.Tensor], positions: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The input of ``block``'s projection (its hidden channels) over ``inputs`` (each 1 x C x H x W), as
    N x channels float64, and the block's own input at the same pixels where it is added back (a residual block;
    else None). At most ``positions`` pixels per input, drawn at random: the same ones on every call with the
    same seed and shapes, so two networks are sampled at the same pixels."""
    hidden: list[torch.Tensor] = []
    residual: list[torch.Tensor] = []
    skip = bool(getattr(block, "has_skip", False))
    generator = torch.Generator().manual_seed(seed)
    seen: dict[str, torch.Tensor] = {}

    def keep_input(module, args):
        seen["x"] = args[0]

    def hook(module, args):
        a = args[0][0].flatten(1).T
        pick = torch.randperm(a.shape[0], generator=generator)[:positions] if a.shape[0] > positions else None
        hidden.append((a if pick is None else a[pick]).double().cpu())
        if skip:
            r = seen["x"][0].flatten(1).T
            residual.append((r if pick is None else r[pick]).double().cpu())
        raise _Stop

    handles = [block.register_forward_pre_hook(keep_input), block.conv_pwl.register_forward_pre_hook(hook)]
    try:
        for x in inputs:
            try:
                model(x)
            except _Stop:
                pass
    finally:
        for handle in handles:
            handle.remove()
    return torch.cat(hidden), (torch.cat(residual) if skip else None)


def _round(width: float, multiple: int, most: int) -> int:
    return min(most, max(multiple, int(round(width / multiple)) * multiple))


@torch.no_grad()
def prune_hidden_channels(
    model: torch.nn.Module,
    inputs: Sequence[torch.Tensor],
    keep: float | dict[int | str, float],
    multiple: int = 8,
    positions: int = 400,
    ridge: float = 1e-3,
    mend_residual: bool = True,
    progress: Callable[[str, int, int, float], None] | None = None,
) -> dict[str, int]:
    """Narrow ``model``'s expanding blocks in place and return ``{"STAGE.BLOCK": hidden channels kept}``.

    ``keep``: the fraction of each block's hidden channels kept, for every block, or per stage and block
    (``{5: 0.6, "5.4": 0.5}``: a block's own entry before its stage's; those not named are left whole), rounded
    to a ``multiple`` of channels. ``inputs``: preprocessed photos (1 x C x H x W each) from the training split.
    ``ridge`` regularises the least-squares refit, relative to the mean activation energy. ``mend_residual``: a
    residual block's refit also makes up what the blocks before it moved its input by (off: each block only
    answers as its whole self would). ``progress(name, kept, of, error)`` is called after each block, where
    ``error`` is the refit projection's mean square error over the variance of what it is asked for. The model's
    config gains ``hidden_widths``, so a checkpoint of it rebuilds the narrowed network.
    """
    fractions = keep if isinstance(keep, dict) else None
    for fraction in (fractions or {None: keep}).values():
        if not 0 < fraction <= 1:
            raise ValueError(f"the fraction of hidden channels kept must be in (0, 1], got {fraction}")
    blocks = expanding_blocks(model)
    known = {name for name, _ in blocks} | {int(name.split(".")[0]) for name, _ in blocks}
    unknown = [key for key in (fractions or {}) if key not in known]
    if unknown:
        raise ValueError(f"no expanding block or stage {unknown} in this encoder (blocks: {[n for n, _ in blocks]})")
    model.eval()
    parent = copy.deepcopy(model)
    parents = dict(expanding_blocks(parent))
    widths = parse_hidden_widths(model.config["hidden_widths"]) if model.config.get("hidden_widths") else {}
    for name, block in blocks:
        stage = int(name.split(".")[0])
        fraction = keep if fractions is None else fractions.get(name, fractions.get(stage))
        if fraction is None:
            continue
        channels = block.conv_pw.out_channels
        kept = _round(channels * fraction, multiple, channels)
        projection = parents[name].conv_pwl.weight[:, :, 0, 0].double().cpu()  # out x hidden
        theirs, their_input = hidden_activations(parent, parents[name], inputs, positions)
        ours, our_input = hidden_activations(model, block, inputs, positions)
        target = theirs @ projection.T
        if our_input is not None and mend_residual:
            # The block adds its input back: where the narrowed blocks before it have left that input off the whole
            # network's, the projection is asked to make up the difference (through bn3's scale), so errors do not
            # pile up along the residual stream.
            bn = block.bn3
            gamma = bn.weight.double().cpu()
            scale = (bn.running_var + bn.eps).sqrt().double().cpu() / torch.where(gamma.abs() < 1e-6, torch.inf, gamma)
            target = target + (their_input - our_input) * scale
        # what a channel adds beyond a constant (which the refit's constant term takes), through the projection
        score = ours.var(0) * (projection**2).sum(0)
        chosen = torch.sort(torch.argsort(score, descending=True)[:kept]).values
        x = torch.cat([ours[:, chosen], torch.ones(len(ours), 1, dtype=ours.dtype)], 1)
        gram = x.T @ x
        gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        # least squares on the normal equations; gelsd takes a singular system too (channels dead on every photo)
        solution = torch.linalg.lstsq(gram, x.T @ target, driver="gelsd").solution  # (kept + 1) x out
        error = float(((x @ solution - target) ** 2).mean() / target.var(0).mean().clamp(min=1e-12))
        bn = block.bn3
        narrow_block(block, chosen, solution[:-1].T.float())
        # conv_pwl has no bias: bn3 computes gamma * (z - mean) / std + beta, so z + b is the mean moved by -b
        bn.running_mean -= solution[-1].to(bn.running_mean)
        widths[name] = kept
        log.info("block %s: %d of %d hidden channels kept, refit error %.4f", name, kept, channels, error)
        if progress is not None:
            progress(name, kept, channels, error)
    if widths:
        model.config["hidden_widths"] = format_hidden_widths(widths)
    return widths
