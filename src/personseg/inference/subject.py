"""Main subject: keep the most prominent person (and whoever touches them), drop bystanders and audiences.

The rule, on the model's probability map at a working size of at most ``WORK_SIDE`` pixels:

1. People are the connected regions of ``alpha >= threshold`` after a small dilation (1% of the image diagonal),
   so people who touch or overlap form one region: "the main person and anyone touching them".
2. Each region scores ``area share x centrality x sharpness`` where centrality is ``1 - 0.6 d`` (``d`` the
   distance of the region's centre of mass from the image centre, 0 at the centre and 1 in a corner) and
   sharpness is ``0.5 + 0.5 g / g_max`` (``g`` the mean gradient magnitude of the photo inside the region; an
   out-of-focus audience scores lower). Regions touching the top of the frame that are much smaller than the
   largest get no extra treatment: size already decides.
3. The highest score wins. In a video (:class:`SubjectTracker`) the region that overlaps the previous frame's
   choice most stays chosen, so a person walking past in front never takes over unless the chosen one is gone
   for ``patience`` frames.

The result is ``alpha`` with every other region set to 0 (soft edges of the kept region are kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIDE = 320
SUBJECT_MODES = ("all", "main")


def check_subject(value: str, name: str = "--subject") -> str:
    if value not in SUBJECT_MODES:
        raise ValueError(f"{name} must be one of {', '.join(SUBJECT_MODES)}, got {value!r}")
    return value


@dataclass
class Regions:
    labels: np.ndarray  # int32 label map at the working size (0 = background)
    count: int  # number of regions (labels 1..count)
    scores: np.ndarray  # float64 (count + 1,), index 0 unused
    areas: np.ndarray  # float64 (count + 1,): pixels of each region at the working size, index 0 the background
    centres: np.ndarray  # float64 (count + 1, 2): each region's centre of mass (y, x) at the working size


def _work_size(h: int, w: int) -> tuple[int, int]:
    scale = min(1.0, WORK_SIDE / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def find_regions(alpha: np.ndarray, rgb: np.ndarray | None = None, threshold: float = 0.5) -> Regions:
    """Label the people regions of ``alpha`` at the working size and score each (see the module rule)."""
    h, w = alpha.shape
    wh, ww = _work_size(h, w)
    small = cv2.resize(alpha.astype(np.float32), (ww, wh), interpolation=cv2.INTER_AREA)
    binary = (small >= threshold).astype(np.uint8)
    grow = max(1, round(0.01 * np.hypot(wh, ww)))
    joined = cv2.dilate(binary, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    count, labels = cv2.connectedComponents(joined, connectivity=8)
    labels = np.where(binary > 0, labels, 0).astype(np.int32)
    count -= 1
    scores = np.zeros(count + 1)
    if count == 0:
        return Regions(labels, 0, scores, np.array([float(labels.size)]), np.zeros((1, 2)))
    flat = labels.ravel()
    area = np.bincount(flat, minlength=count + 1).astype(np.float64)
    yy, xx = np.mgrid[:wh, :ww]
    cy = np.bincount(flat, weights=yy.ravel(), minlength=count + 1) / np.maximum(area, 1)
    cx = np.bincount(flat, weights=xx.ravel(), minlength=count + 1) / np.maximum(area, 1)
    d = np.hypot((cy - (wh - 1) / 2) / (wh / 2), (cx - (ww - 1) / 2) / (ww / 2)) / np.sqrt(2)
    centrality = 1 - 0.6 * np.clip(d, 0, 1)
    sharpness = np.ones(count + 1)
    if rgb is not None:
        gray = cv2.cvtColor(cv2.resize(rgb, (ww, wh), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        gray = gray.astype(np.float32)
        grad = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        g = np.bincount(flat, weights=grad.ravel(), minlength=count + 1) / np.maximum(area, 1)
        g_max = g[1:].max()
        if g_max > 0:
            sharpness = 0.5 + 0.5 * g / g_max
    scores = area / area[1:].sum() * centrality * sharpness
    scores[0] = 0.0
    return Regions(labels, count, scores, area, np.stack([cy, cx], axis=1))


def keep_regions(alpha: np.ndarray, regions: Regions, keep: list[int]) -> np.ndarray:
    """``alpha`` with everything outside the regions ``keep`` (and their soft rim) set to 0."""
    if regions.count == 0:
        return alpha
    h, w = alpha.shape
    chosen = np.isin(regions.labels, keep).astype(np.uint8)
    others = ((regions.labels > 0) & (chosen == 0)).astype(np.uint8)
    # Own every pixel nearer to a kept region than to a dropped one: soft rims stay with their person.
    dist_keep = cv2.distanceTransform(1 - chosen, cv2.DIST_L2, 3)
    dist_drop = cv2.distanceTransform(1 - others, cv2.DIST_L2, 3) if others.any() else np.full_like(dist_keep, 1e9)
    owned = (dist_keep <= dist_drop).astype(np.float32)
    owned = cv2.resize(owned, (w, h), interpolation=cv2.INTER_LINEAR)
    return (alpha * np.clip(owned, 0, 1)).astype(np.float32)


def main_subject(alpha: np.ndarray, rgb: np.ndarray | None = None, threshold: float = 0.5) -> np.ndarray:
    """One photo: keep the highest-scoring region of ``alpha`` (HxW float32 in [0, 1])."""
    regions = find_regions(alpha, rgb, threshold)
    if regions.count <= 1:
        return alpha
    return keep_regions(alpha, regions, [int(np.argmax(regions.scores))])


class SubjectTracker:
    """Video: the same main subject from frame to frame.

    The region overlapping the previous choice most (by pixels at the working size) stays chosen; when nothing
    overlaps it for ``patience`` frames (the person left, or a cut), the best-scoring region is chosen afresh.
    The tracker remembers the subject's size (a running mean while it is followed): when what it follows is under a
    third of that size (the subject was hidden and the choice went to someone small, or the overlap slipped onto a
    speck as she moved away fast) and a bigger region scores higher, the choice moves there, so a subject who comes
    back from behind an obstacle is found again. Only a region whose centre lies near where the subject was last
    seen at its size (within its box grown by half its height and width on each side) may take over that way, so
    when the subject fades for a moment (dance-jump's dancer among the fountain's statues) the choice does not jump
    to an audience across the frame. A bigger person walking past does not take over: the subject keeps its size.
    """

    def __init__(self, threshold: float = 0.5, patience: int = 5) -> None:
        self.threshold = threshold
        self.patience = patience
        self.previous: np.ndarray | None = None  # bool mask of the last choice at the working size
        self.missed = 0
        self.size = 0.0  # the subject's area in working-size pixels (running mean); 0: none yet
        self.followed = 0.0  # the area of the last choice (the pixels of ``previous``)
        self.where: tuple[float, float, float, float] | None = None  # the subject's last box at its size, grown

    def reset(self) -> None:
        self.previous, self.missed, self.size, self.followed, self.where = None, 0, 0.0, 0.0, None

    def __call__(self, alpha: np.ndarray, rgb: np.ndarray | None = None) -> np.ndarray:
        regions = find_regions(alpha, rgb, self.threshold)
        if regions.count == 0:
            self.missed += 1
            if self.missed > self.patience:
                self.reset()
            return alpha
        choice = None
        if self.previous is not None and self.previous.shape == regions.labels.shape:
            overlap = np.bincount(regions.labels[self.previous].ravel(), minlength=regions.count + 1)
            overlap[0] = 0
            if overlap.max() > 0:
                choice = int(np.argmax(overlap))
        if choice is None:
            # The subject may be hidden for a moment: keep nobody new yet, unless what was followed last was only a
            # speck (under a third of the subject's size): then there is nothing to wait for.
            trusted = self.previous is not None and self.followed >= self.size / 3
            if trusted and self.missed < self.patience:
                self.missed += 1
                return keep_regions(alpha, regions, [])
            choice = int(np.argmax(regions.scores))
        area = regions.areas
        if self.size > 0 and area[choice] < self.size / 3:
            # Following someone far smaller than the subject was: take a bigger region that scores higher.
            bigger = np.flatnonzero(
                (area > area[choice]) & (regions.scores > regions.scores[choice]) & self._near(regions)
            )
            if bigger.size:
                choice = int(bigger[np.argmax(regions.scores[bigger])])
        if self.size == 0:
            self.size = area[choice]
        elif area[choice] >= self.size / 3:
            self.size = 0.9 * self.size + 0.1 * area[choice]
        self.missed = 0
        self.previous, self.followed = regions.labels == choice, area[choice]
        if area[choice] >= self.size / 3:
            ys, xs = np.nonzero(self.previous)
            gy, gx = (ys.max() - ys.min() + 1) / 2, (xs.max() - xs.min() + 1) / 2
            self.where = (ys.min() - gy, ys.max() + gy, xs.min() - gx, xs.max() + gx)
        return keep_regions(alpha, regions, [choice]) if regions.count > 1 else alpha

    def _near(self, regions: Regions) -> np.ndarray:
        """Per region (index 0 unused): whether its centre lies in the subject's last grown box (all, if none)."""
        if self.where is None:
            return np.ones(regions.count + 1, bool)
        cy, cx = regions.centres[:, 0], regions.centres[:, 1]
        y0, y1, x0, x1 = self.where
        return (cy >= y0) & (cy <= y1) & (cx >= x0) & (cx <= x1)
