"""Full-resolution evaluation of any model (shipped name, .onnx or .pt) on images/ + masks/ folders.

Per image: IoU, Dice and pixel accuracy (from :mod:`personseg.metrics`, one definition), boundary IoU (Cheng et
al. 2021: IoU of the bands within ``d`` = 2% of the image diagonal inside each mask's contour) and the MAE of
the soft mask. Figures are means over images, per folder and pooled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from personseg.data.folder import PairedFolder
from personseg.metrics import dice_score, get_stats, iou_score, pixel_accuracy

log = logging.getLogger(__name__)

SCORE_KEYS = ("iou", "dice", "pixel_accuracy", "boundary_iou", "mae")


def boundary_band(mask: np.ndarray, d: int) -> np.ndarray:
    """Pixels of ``mask`` (bool) within ``d`` pixels of its contour, inside the mask."""
    if d < 1 or not mask.any():
        return mask.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
    # Pad with "inside" so the image border does not count as a contour.
    eroded = cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    return mask & ~eroded.astype(bool)


def boundary_iou(pred: np.ndarray, truth: np.ndarray, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU of two boolean masks; 1.0 when both are empty."""
    h, w = truth.shape
    d = max(1, int(round(dilation_ratio * np.hypot(h, w))))
    bp, bt = boundary_band(pred, d), boundary_band(truth, d)
    union = np.logical_or(bp, bt).sum()
    return 1.0 if union == 0 else float(np.logical_and(bp, bt).sum() / union)


def score_image(prob: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All figures for one image: ``prob`` and ``truth`` HxW in [0, 1] at the same size."""
    if prob.shape != truth.shape:
        raise ValueError(f"prediction {prob.shape} and truth {truth.shape} differ in size")
    p, t = torch.from_numpy(np.ascontiguousarray(prob))[None], torch.from_numpy(np.ascontiguousarray(truth))[None]
    stats = get_stats(p.clamp(0, 1), t, threshold=threshold)
    return {
        "iou": float(iou_score(*stats, reduction="mean")),
        "dice": float(dice_score(*stats, reduction="mean")),
        "pixel_accuracy": float(pixel_accuracy(*stats, reduction="mean")),
        "boundary_iou": boundary_iou(prob >= threshold, truth >= 0.5),
        "mae": float(np.abs(prob.astype(np.float32) - truth.astype(np.float32)).mean()),
    }


@dataclass
class EvalResult:
    """Per-image scores of one model on one folder, with timings."""

    stems: list[str] = field(default_factory=list)
    scores: list[dict[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        out = {k: float(np.mean([s[k] for s in self.scores])) for k in SCORE_KEYS}
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


def pooled(results: dict[str, EvalResult]) -> dict[str, float]:
    """Mean over every image of every folder."""
    merged = EvalResult()
    for r in results.values():
        merged.stems += r.stems
        merged.scores += r.scores
        merged.seconds += r.seconds
    return merged.summary()
