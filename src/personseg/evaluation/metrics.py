"""Binary segmentation metrics: count confusion stats per image, then turn them into scores.

The two-step shape follows segmentation_models_pytorch: :func:`get_stats` thresholds a batch into
per-image true/false positive/negative pixel counts, and :func:`iou_score`, :func:`dice_score` and
:func:`pixel_accuracy` turn counts into scores with an explicit ``reduction`` and ``zero_division``.

Reductions:

* ``"none"``: one score per image, shape (N,).
* ``"mean"``: the mean over images of the per-image scores (every image counts equally, however many
  person pixels it has).
* ``"micro"``: counts pooled over all images first, then one score (big people weigh more).

Empty masks: when an image has no person in the target *and* none in the prediction, IoU and Dice are
0/0. That image gets ``zero_division``, 1.0 by default, because correctly predicting "nobody here" is a
perfect answer; pass ``zero_division=0.0`` to score such images as failures instead. An empty target
with a non-empty prediction (or the reverse) is a plain 0.

:class:`MetricAccumulator` keeps dataset-wide sums in one float64 tensor so distributed evaluation can
``all_reduce`` it and every rank gets the same, exact figures.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["get_stats", "iou_score", "dice_score", "pixel_accuracy", "MetricAccumulator"]

_REDUCTIONS = ("mean", "none", "micro")
_Counts = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _as_nhw(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.ndim == 3:
        return x
    raise ValueError(f"{name} must be shaped (N, 1, H, W) or (N, H, W), got {tuple(x.shape)}")


def _as_pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as (N, H, W), checked to be the same shape."""
    pred, target = _as_nhw(pred, "pred"), _as_nhw(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    return pred, target


def get_stats(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> _Counts:
    """Per-image pixel counts ``(tp, fp, fn, tn)``, each a LongTensor of shape (N,).

    ``pred`` holds probabilities in [0, 1] (pass ``logits.sigmoid()``, not logits) or a bool mask; a pixel is
    predicted foreground when ``pred >= threshold``. ``target`` may be 0/1, bool or soft (0..1, e.g. a
    resized mask or an alpha matte); it is binarised with ``target >= 0.5``. Pixels where ``target < 0`` (the
    ``IGNORE`` value of ignore/ masks) are left out of every count.
    """
    pred, target = _as_pair(pred, target)
    if pred.dtype == torch.bool:
        p = pred
    else:
        # Written so NaN fails too. Catches the common mistake of passing logits (costs one host sync).
        if pred.is_floating_point() and not bool(((pred >= 0) & (pred <= 1)).all()):
            raise ValueError("pred must be probabilities in [0, 1] without NaN; apply .sigmoid() to logits first")
        p = pred >= threshold
    t = target if target.dtype == torch.bool else target >= 0.5
    # Negative target values (IGNORE, from ignore/ masks) are pixels of unknown label: counted nowhere.
    valid = None if target.dtype == torch.bool else target >= 0

    dims = (1, 2)
    if valid is not None:
        p = p & valid
        n = ~p & valid
    else:
        n = ~p
    tp = (p & t).sum(dims)
    fp = (p & ~t).sum(dims)
    fn = (n & t).sum(dims)
    tn = (n & ~t).sum(dims)
    return tp.long(), fp.long(), fn.long(), tn.long()


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor, zero_division: float) -> torch.Tensor:
    # Counts are integers, so a zero denominator is exactly 0 and clamping to 1 only touches those entries.
    numerator, denominator = numerator.double(), denominator.double()
    score = numerator / denominator.clamp_min(1)
    return torch.where(denominator > 0, score, torch.full_like(score, float(zero_division)))


def _score(
    counts: _Counts,
    formula: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    reduction: str,
    zero_division: float,
) -> torch.Tensor:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; valid: {', '.join(_REDUCTIONS)}")
    tp, fp, fn, tn = counts
    if not tp.shape == fp.shape == fn.shape == tn.shape:
        raise ValueError("tp, fp, fn and tn must have the same shape; use the output of get_stats")
    if reduction == "micro":
        tp, fp, fn, tn = (c.sum(0) for c in (tp, fp, fn, tn))
    num, den = formula(tp, fp, fn, tn)
    score = _safe_divide(num, den, zero_division)
    if reduction == "mean":
        if score.numel() == 0:
            raise ValueError("cannot average a score over zero images")
        score = score.mean()
    return score


def iou_score(
    tp: torch.Tensor,
    fp: torch.Tensor,
    fn: torch.Tensor,
    tn: torch.Tensor,
    reduction: str = "mean",
    zero_division: float = 1.0,
) -> torch.Tensor:
    """Intersection over union (Jaccard index) ``tp / (tp + fp + fn)``, as float64."""
    return _score((tp, fp, fn, tn), lambda tp, fp, fn, tn: (tp, tp + fp + fn), reduction, zero_division)


def dice_score(
    tp: torch.Tensor,
    fp: torch.Tensor,
    fn: torch.Tensor,
    tn: torch.Tensor,
    reduction: str = "mean",
    zero_division: float = 1.0,
) -> torch.Tensor:
    """Dice coefficient (F1) ``2 tp / (2 tp + fp + fn)``, as float64."""
    return _score((tp, fp, fn, tn), lambda tp, fp, fn, tn: (2 * tp, 2 * tp + fp + fn), reduction, zero_division)


def pixel_accuracy(
    tp: torch.Tensor,
    fp: torch.Tensor,
    fn: torch.Tensor,
    tn: torch.Tensor,
    reduction: str = "mean",
    zero_division: float = 1.0,
) -> torch.Tensor:
    """Fraction of pixels labelled correctly ``(tp + tn) / (tp + fp + fn + tn)``, as float64.

    The denominator is the pixel count, so ``zero_division`` only matters for zero-sized images.
    """
    return _score((tp, fp, fn, tn), lambda tp, fp, fn, tn: (tp + tn, tp + fp + fn + tn), reduction, zero_division)


def soft_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image mean absolute error of the soft mask, shape (N,), float64, over labelled pixels only.

    Thresholded scores cannot tell a confident mask from one that hovers near 0.5; this can. A loss that leaves
    the probabilities uncalibrated (the Lovasz hinge: default v21 doubled it on davis_people at the same IoU)
    shows here, and photos and video use the soft mask. ``pred`` as for :func:`get_stats` (a bool mask counts
    as 0/1); ``target`` is used as given (soft targets stay soft), its negative (ignored) pixels left out; an
    image without labelled pixels scores 0.
    """
    pred, target = _as_pair(pred, target)
    p, t = pred.double(), target.double()
    valid = t >= 0
    error = ((p - t.clamp_min(0)).abs() * valid).sum((1, 2))
    return error / valid.sum((1, 2)).clamp_min(1)


class MetricAccumulator:
    """Dataset-wide Dice, IoU, pixel accuracy and soft-mask error, accumulated batch by batch.

    Keeps sums of per-image scores (so ``compute`` gives the mean over images however the data was
    batched or sharded) plus pooled counts for ``iou_micro``. The state is one float64 tensor on the device
    of the last batch; for distributed evaluation::

        state = acc.state_tensor().to(device)
        torch.distributed.all_reduce(state)  # SUM
        acc.load_state_tensor(state)
        figures = acc.compute()

    float64 holds pixel counts exactly up to 2**53, far beyond any dataset.
    """

    # Layout of the state tensor; every entry is a plain sum, so summing states across ranks is correct.
    _FIELDS = ("dice_sum", "iou_sum", "pixel_accuracy_sum", "images", "tp", "fp", "fn", "tn", "mae_sum")

    def __init__(self, threshold: float = 0.5, zero_division: float = 1.0) -> None:
        self.threshold = threshold
        self.zero_division = zero_division
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._state = torch.zeros(len(self._FIELDS), dtype=torch.float64)

    @property
    def num_images(self) -> int:
        """Images accumulated so far."""
        return int(self._state[3].item())

    @torch.no_grad()
    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``probs`` in [0, 1] and ``target`` as for :func:`get_stats`."""
        stats = get_stats(probs, target, threshold=self.threshold)
        kw = {"reduction": "none", "zero_division": self.zero_division}
        batch = torch.stack(
            [
                dice_score(*stats, **kw).sum(),
                iou_score(*stats, **kw).sum(),
                pixel_accuracy(*stats, **kw).sum(),
                torch.tensor(float(stats[0].numel()), dtype=torch.float64, device=stats[0].device),
                *(s.sum().double() for s in stats),
                soft_error(probs, target).sum(),
            ]
        )
        self._state = self._state.to(batch.device) + batch

    def state_tensor(self) -> torch.Tensor:
        """A copy of the state: a float64 1-D tensor whose entries are all sums (safe to all_reduce)."""
        return self._state.clone()

    def load_state_tensor(self, state: torch.Tensor) -> None:
        """Replace the state, e.g. with the all-reduced sum of every rank's :meth:`state_tensor`."""
        if state.shape != (len(self._FIELDS),):
            raise ValueError(
                f"state must have shape ({len(self._FIELDS)},) as returned by state_tensor(), got {tuple(state.shape)}"
            )
        self._state = state.detach().to(torch.float64).clone()

    def compute(self) -> dict[str, float]:
        """``dice``, ``iou``, ``pixel_accuracy`` and ``mae`` (means over images) and ``iou_micro`` (pooled counts)."""
        dice, iou, acc, images, tp, fp, fn, _, mae = self._state.tolist()
        if images == 0:
            raise RuntimeError("MetricAccumulator is empty: call update() with at least one image first")
        union = tp + fp + fn
        return {
            "dice": dice / images,
            "iou": iou / images,
            "pixel_accuracy": acc / images,
            "iou_micro": tp / union if union > 0 else float(self.zero_division),
            "mae": mae / images,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold}, images={self.num_images})"
