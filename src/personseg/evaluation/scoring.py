"""Full-resolution evaluation of any model (shipped name, .onnx or .pt) on images/ + masks/ folders.

Per image: IoU, Dice and pixel accuracy (threshold 0.5 on the truth, ``threshold`` on the prediction), boundary IoU
(Cheng et al. 2021: IoU of the bands within ``d`` = 2% of the image diagonal inside each mask's contour) and the MAE
of the soft mask. Pixels whose truth is negative (``IGNORE``, from a folder's ignore/ masks) count in none of them.
Per folder: means over images, and the pooled IoU (intersection and union summed over every pixel of every image,
so a frame with one small pedestrian weighs as little as its pixels; the mean gives it a full vote).

Counting is numpy, mirroring :func:`personseg.evaluation.metrics.get_stats` (same thresholds, same
``zero_division=1``), so ``personseg evaluate`` runs on the inference-only install, without torch.

The validation split is the training config's (:func:`read_split_config`, :func:`validation_stems`), and a few
sequences label only the main subject (:data:`MAIN_SUBJECT`): they are scored apart from the all-person figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from personseg.data.folder import PairedFolder
from personseg.data.split import check_patterns, patterns_for, split_by_patterns, split_source

log = logging.getLogger(__name__)

SCORE_KEYS = ("iou", "dice", "pixel_accuracy", "boundary_iou", "mae")
COUNT_KEYS = ("tp", "fp", "fn", "tn")

#: Sequences where only the main subject is labelled (others in view are background): an all-person score would
#: count every bystander found as a false positive, so they are reported on their own (see ../shared/data/README.md).
MAIN_SUBJECT = ("davis_people/dance-jump_*",)


def confusion(prob: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """Pixel counts ``(tp, fp, fn, tn)``: person where ``prob >= threshold`` / ``truth >= 0.5``; negative
    truth (IGNORE) counted nowhere."""
    valid = truth >= 0
    p, t = prob >= threshold, truth >= 0.5
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t & valid))
    fn = int(np.count_nonzero(~p & t))
    tn = int(np.count_nonzero(~p & ~t & valid))
    return tp, fp, fn, tn


def _ratio(num: float, den: float, zero_division: float = 1.0) -> float:
    # Both masks empty (0/0) is the right answer "nobody here": a perfect score, as in evaluation.metrics.
    return float(num / den) if den > 0 else zero_division


def boundary_band(mask: np.ndarray, d: int) -> np.ndarray:
    """Pixels of ``mask`` (bool) within ``d`` pixels of its contour, inside the mask."""
    import cv2

    if d < 1 or not mask.any():
        return mask.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
    # Pad with "inside" so the image border does not count as a contour.
    eroded = cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    return mask & ~eroded.astype(bool)


def boundary_iou(
    pred: np.ndarray, truth: np.ndarray, dilation_ratio: float = 0.02, valid: np.ndarray | None = None
) -> float:
    """Boundary IoU of two boolean masks, over the ``valid`` pixels only (all when None); 1.0 when both are empty."""
    h, w = truth.shape
    d = max(1, int(round(dilation_ratio * np.hypot(h, w))))
    bp, bt = boundary_band(pred, d), boundary_band(truth, d)
    if valid is not None:
        bp, bt = bp & valid, bt & valid
    return _ratio(np.count_nonzero(bp & bt), np.count_nonzero(bp | bt))


def score_image(prob: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All figures for one image, and its pixel counts: ``prob`` and ``truth`` HxW at the same size, ``prob`` in
    [0, 1], ``truth`` in [0, 1] or IGNORE (< 0) where the label is unknown."""
    if prob.shape != truth.shape:
        raise ValueError(f"prediction {prob.shape} and truth {truth.shape} differ in size")
    prob = np.clip(prob.astype(np.float32, copy=False), 0.0, 1.0)
    truth = truth.astype(np.float32, copy=False)
    valid = truth >= 0
    tp, fp, fn, tn = confusion(prob, truth, threshold)
    n_valid = tp + fp + fn + tn
    all_valid = n_valid == truth.size
    return {
        "iou": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "pixel_accuracy": _ratio(tp + tn, n_valid),
        "boundary_iou": boundary_iou(prob >= threshold, truth >= 0.5, valid=None if all_valid else valid),
        "mae": float(np.abs(prob - truth)[valid].mean()) if n_valid else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


@dataclass
class EvalResult:
    """Per-image scores of one model on one folder, with timings."""

    stems: list[str] = field(default_factory=list)
    scores: list[dict[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Means over images of :data:`SCORE_KEYS`, ``pooled_iou`` (counts summed first), ``images``, ``ms``."""
        out = {k: float(np.mean([s[k] for s in self.scores])) for k in SCORE_KEYS}
        tp, fp, fn = (sum(s[k] for s in self.scores) for k in ("tp", "fp", "fn"))
        out["pooled_iou"] = _ratio(tp, tp + fp + fn)
        out["images"] = len(self.scores)
        out["ms_per_image"] = 1000 * float(np.mean(self.seconds)) if self.seconds else float("nan")
        return out

    def worst(self, n: int = 20, key: str = "iou") -> list[tuple[str, float]]:
        order = np.argsort([s[key] for s in self.scores])[:n]
        return [(self.stems[i], self.scores[i][key]) for i in order]


def evaluate_folder(
    predict: Callable[[np.ndarray], np.ndarray],
    folder: PairedFolder,
    threshold: float = 0.5,
    limit: int | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> EvalResult:
    """Run ``predict(rgb) -> prob HxW`` on every pair (at full resolution) and score it."""
    result = EvalResult()
    indices = range(len(folder) if limit is None else min(limit, len(folder)))
    for i in progress(indices) if progress else indices:
        rgb, truth = folder[i]
        t0 = time.perf_counter()
        prob = predict(rgb)
        result.seconds.append(time.perf_counter() - t0)
        result.stems.append(folder.pairs[i].stem)
        result.scores.append(score_image(prob, truth, threshold))
    return result


def pooled(results: Mapping[str, EvalResult]) -> dict[str, float]:
    """Mean over every image of every folder (and the pooled IoU over all their pixels)."""
    merged = EvalResult()
    for r in results.values():
        merged.stems += r.stems
        merged.scores += r.scores
        merged.seconds += r.seconds
    return merged.summary()


def macro_average(
    report: Mapping[str, Mapping[str, float]], sources: Sequence[str], keys: Sequence[str] = ("iou", "boundary_iou")
) -> dict[str, float]:
    """The plain mean over ``sources`` of each of their ``keys`` (every source counts equally, however many
    images it has): what picks the trained model (``select_sources``)."""
    if not sources:
        raise ValueError("a macro average needs at least one source (select_sources is empty)")
    missing = [s for s in sources if s not in report]
    if missing:
        raise ValueError(
            f"macro average over {list(sources)}: no figures for {missing} (have {sorted(report)}); "
            "pass their folders with --data"
        )
    return {k: float(np.mean([report[s][k] for s in sources])) for k in keys}


# --- which images: the training config's validation split ------------------------------------------------------


@dataclass(frozen=True)
class SplitConfig:
    """The validation split and the macro-average sources, as a training config defines them."""

    val_fraction: float | None = None
    val_patterns: tuple[str, ...] = ()
    select_sources: tuple[str, ...] = ()


def read_split_config(path: str | Path) -> SplitConfig:
    """``val_fraction``, ``val_patterns`` and ``select_sources`` of a training config YAML (other keys ignored)."""
    try:
        import yaml
    except ImportError:
        raise ImportError(f"--split-config {path}: reading YAML needs PyYAML (pip install pyyaml)") from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--split-config {path}: no such training config")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"--split-config {path}: expected a YAML mapping of training options")
    patterns = tuple(raw.get("val_patterns") or ())
    check_patterns(patterns)
    fraction = raw.get("val_fraction", 0.1)  # TrainConfig's default
    return SplitConfig(
        val_fraction=None if fraction is None else float(fraction),
        val_patterns=patterns,
        select_sources=tuple(raw.get("select_sources") or ()),
    )


def validation_stems(source: str, stems: Sequence[str], split: SplitConfig) -> list[str]:
    """The stems of ``source`` that training holds out: by pattern when a pattern names the source, else by the
    fixed hash split (:func:`personseg.data.split.split_stems`); all of them when the split has no fraction."""
    if split.val_fraction is None and not patterns_for(source, split.val_patterns):
        return list(stems)
    return split_source(source, stems, split.val_fraction or 0.0, split.val_patterns)[1]


def set_apart(source: str, stems: Sequence[str], patterns: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """``(rest, {pattern: stems})``: the stems of ``source`` matched by each ``SOURCE/STEM_GLOB`` pattern that names
    it (e.g. :data:`MAIN_SUBJECT`), and all the others."""
    rest, apart = list(stems), {}
    for pattern in patterns:
        globs = patterns_for(source, [pattern])
        if globs:
            rest, matched = split_by_patterns(rest, globs)
            if matched:
                apart[pattern] = matched
    return rest, apart


def evaluation_folders(
    roots: Sequence[str | Path],
    split: SplitConfig,
    main_subject: Sequence[str] = MAIN_SUBJECT,
    skip_invalid: bool = True,
) -> dict[str, PairedFolder]:
    """The validation images of each root by source name; main-subject sequences under their pattern's name."""
    folders: dict[str, PairedFolder] = {}
    for spec in roots:
        root = Path(spec)
        source = root.name or str(root)
        stems = validation_stems(source, PairedFolder(root, skip_invalid=skip_invalid).stems, split)
        rest, apart = set_apart(source, stems, main_subject)
        for name, subset in ((source, rest), *apart.items()):
            if subset:
                folders[name] = PairedFolder(root, stems=subset, skip_invalid=True, check=False)
    if not folders:
        raise ValueError(f"no validation images in {', '.join(map(str, roots))}: check the split")
    return folders


def temporal_scores(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray], threshold: float = 0.5) -> dict:
    """Steadiness of a sequence of soft masks against the truth, frames in order (all HxW float in [0, 1]).

    * ``iou``: mean per-frame IoU;
    * ``temporal_error``: mean over frames t >= 1 of mean |(p_t - p_t-1) - (g_t - g_t-1)| x 100, the change the
      model makes that the truth does not (flicker plus lag);
    * ``flicker``: mean |p_t - p_t-1| x 100 over the pixels where the truth did not change, pooled over the
      sequence;
    * ``te_still`` + ``te_moved`` = ``temporal_error``: its part from pixels where the truth stood still (what a
      smoother can remove) and from pixels where the truth changed (a missed or lagging moving part: only a more
      accurate mask removes it).
    """
    if len(preds) != len(truths) or not preds:
        raise ValueError(f"need as many predictions as truths (got {len(preds)} and {len(truths)}), at least one")
    ious = [
        _ratio(tp, tp + fp + fn)
        for tp, fp, fn, _ in (confusion(p, t, threshold) for p, t in zip(preds, truths, strict=True))
    ]
    errors, moved_errors, still_sum, still_count = [], [], 0.0, 0
    for t in range(1, len(preds)):
        dp = preds[t].astype(np.float32) - preds[t - 1]
        dg = truths[t].astype(np.float32) - truths[t - 1]
        error = np.abs(dp - dg)
        still = dg == 0
        errors.append(float(error.mean()))
        moved_errors.append(float(error[~still].sum()) / error.size)
        still_sum += float(np.abs(dp[still]).sum())
        still_count += int(still.sum())
    temporal_error = 100 * float(np.mean(errors)) if errors else 0.0
    te_moved = 100 * float(np.mean(moved_errors)) if errors else 0.0
    return {
        "iou": float(np.mean(ious)),
        "temporal_error": temporal_error,
        "te_still": temporal_error - te_moved,
        "te_moved": te_moved,
        "flicker": 100 * still_sum / still_count if still_count else 0.0,
        "frames": len(preds),
    }
