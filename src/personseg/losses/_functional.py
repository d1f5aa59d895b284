"""Pure functions behind the loss modules: no state, no defaults that matter, easy to test by hand.

Every function takes LOGITS and float targets in [0, 1] (soft targets allowed unless noted) of the same
shape, with images along dim 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_inputs(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate shapes and return both tensors in at least float32.

    Sums over a whole mask overflow float16 (65504) and lose precision in bfloat16, so under autocast
    the losses still reduce in float32.
    """
    if logits.shape != target.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape, e.g. (N, 1, H, W)"
        )
    if logits.ndim < 2:
        raise ValueError(f"expected images along dim 0, e.g. (N, 1, H, W); got shape {tuple(logits.shape)}")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return logits.to(dtype), target.to(dtype)


def drop_ignored(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Neutralise pixels of unknown label (``target < 0``, the IGNORE value of ignore/ masks).

    Their logits become a constant -1e4 (no gradient) and their targets 0: a confident, correct "background"
    that adds nothing to BCE, Dice, Tversky, focal or Lovasz terms, so every loss ignores them unchanged.
    Returns the inputs themselves when nothing is ignored.
    """
    ignored = target < 0
    if not bool(ignored.any()):
        return logits, target
    return neutralise(logits, target, ignored)


def neutralise(logits: torch.Tensor, target: torch.Tensor, where: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits -1e4 (no gradient) and targets 0 where ``where`` is True: a confident, correct background."""
    return logits.masked_fill(where, -1e4), target.masked_fill(where, 0.0)


def _sum_dims(x: torch.Tensor, per_image: bool) -> tuple[int, ...]:
    # Per image: reduce everything but dim 0. Per batch: reduce everything (one pooled score).
    return tuple(range(1, x.ndim)) if per_image else tuple(range(x.ndim))


def soft_tversky_score(
    probs: torch.Tensor,
    target: torch.Tensor,
    alpha: float,
    beta: float,
    smooth: float = 0.0,
    eps: float = 1e-7,
    per_image: bool = False,
) -> torch.Tensor:
    """Soft Tversky index ``(TP + smooth) / (TP + alpha FP + beta FN + smooth)``.

    ``alpha`` weighs false positives, ``beta`` false negatives; ``alpha = beta = 0.5`` is Dice. Returns a
    scalar pooled over the batch, or shape (N,) with ``per_image``.
    """
    dims = _sum_dims(probs, per_image)
    tp = (probs * target).sum(dims)
    fp = (probs * (1 - target)).sum(dims)
    fn = ((1 - probs) * target).sum(dims)
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp_min(eps)


def soft_dice_score(
    probs: torch.Tensor,
    target: torch.Tensor,
    smooth: float = 0.0,
    eps: float = 1e-7,
    per_image: bool = False,
) -> torch.Tensor:
    """Soft Dice ``(2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)``.

    Returns a scalar pooled over the batch, or shape (N,) with ``per_image``.
    """
    dims = _sum_dims(probs, per_image)
    intersection = (probs * target).sum(dims)
    cardinality = probs.sum(dims) + target.sum(dims)
    return (2 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)


def focal_loss_with_logits(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float | None = None,
) -> torch.Tensor:
    """Per-pixel focal loss ``-alpha_t (1 - p_t)^gamma log(p_t)`` (Lin et al. 2017), unreduced.

    With soft targets ``p_t = p t + (1 - p)(1 - t)`` and the log term is the soft binary cross-entropy.
    ``alpha`` (if given) weighs the foreground term, ``1 - alpha`` the background one.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    probs = logits.sigmoid()
    p_t = probs * target + (1 - probs) * (1 - target)
    loss = (1 - p_t).pow(gamma) * bce
    if alpha is not None:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. errors sorted in decreasing order.

    Works along the last dim. Entry i is ``J(first i+1 pixels wrong) - J(first i pixels wrong)``, where J is
    the Jaccard loss of the foreground; cumulative sums give every prefix at once (Berman et al. 2018).
    """
    gts = gt_sorted.sum(-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(-1)
    union = gts + (1 - gt_sorted).cumsum(-1)  # >= 1 everywhere, so no division by zero
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor, per_image: bool = True) -> torch.Tensor:
    """Lovasz hinge loss (Berman et al. 2018), a convex surrogate of 1 - IoU optimised directly.

    The Lovasz extension is defined for binary ground truth, so soft targets are binarised at 0.5.
    ``per_image`` averages the loss of each image; otherwise the batch is treated as one big image.
    """
    if logits.numel() == 0:
        return logits.sum() * 0.0  # nothing to score: keep the graph, avoid a mean over nothing
    labels = (target >= 0.5).to(logits.dtype)
    rows = logits.shape[0] if per_image else 1
    logits, labels = logits.reshape(rows, -1), labels.reshape(rows, -1)
    errors = 1.0 - logits * (2.0 * labels - 1.0)
    errors_sorted, order = torch.sort(errors, dim=1, descending=True)
    grad = lovasz_grad(labels.gather(1, order))
    # All images are sorted at once; the hinge keeps only the errors that count.
    return (F.relu(errors_sorted) * grad).sum(1).mean()


def contour_band(target: torch.Tensor, ratio: float = 0.02) -> torch.Tensor:
    """Pixels within ``d = round(ratio * diagonal)`` of each label's contour, on both sides (bool, same shape).

    The label is binarised at 0.5; the band is its dilation minus its erosion by a (2d+1) square, so a person
    missed along the edge (a sleeve, a foot) and a background patch glued to it both fall inside. The
    image border does not count as a contour. ``ratio`` matches the boundary IoU of
    ``personseg.evaluation.scoring`` (2% of the diagonal).
    """
    h, w = target.shape[-2:]
    d = max(1, int(round(ratio * (h * h + w * w) ** 0.5)))
    labels = (target >= 0.5).to(torch.float32).reshape(-1, 1, h, w)
    grown = F.max_pool2d(labels, 2 * d + 1, stride=1, padding=d)
    # Erode with the border counted as inside: pad with ones before the (unpadded) min-pool.
    padded = F.pad(labels, (d, d, d, d), value=1.0)
    shrunk = -F.max_pool2d(-padded, 2 * d + 1, stride=1)
    return ((grown - shrunk) > 0.5).reshape(target.shape)


def lovasz_hinge_within(logits: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Per-image Lovasz hinge over the pixels where ``keep`` is True only (the rest count as absent)."""
    # A confident, correct background sorts last and adds nothing, as in drop_ignored.
    return lovasz_hinge(*neutralise(logits, target, ~keep), per_image=True)
