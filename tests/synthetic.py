"""Generated images shared by the tests (never ../shared data): bright "people" on a dark noisy background."""

from __future__ import annotations

import cv2
import numpy as np


def ellipse(h: int, w: int, center: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """H x W bool: the ellipse at ``center`` (row, col) with ``radii`` (vertical, horizontal)."""
    (cy, cx), (ry, rx) = center, radii
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def paint(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB uint8: a bright colour (170..255 a channel) where ``mask``, a dark one (0..59) elsewhere, plus noise."""
    bg, fg = rng.integers(0, 60, 3), rng.integers(170, 256, 3)
    img = np.where(mask[..., None], fg, bg).astype(np.float32) + rng.normal(0, 8, (*mask.shape, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def person(
    h: int,
    w: int,
    seed: int = 0,
    center: tuple[float, float] | None = None,
    radius: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8, bool mask): one "person", an ellipse placed and sized at random from ``seed``; a disc of
    ``radius`` and/or at ``center`` (row, col) where they are given."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    ry, rx = rng.uniform(0.25, 0.4) * h, rng.uniform(0.15, 0.3) * w
    if center is not None:
        cy, cx = center
    if radius is not None:
        ry = rx = radius
    mask = ellipse(h, w, (cy, cx), (ry, rx))
    return paint(mask, rng), mask


def two_people(h: int = 80, w: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A big central "person" (disc) and a small one cut by the top edge, apart: (RGB, big mask, small mask)."""
    big = ellipse(h, w, (0.55 * h, 0.5 * w), (0.3 * h, 0.3 * h))
    small = ellipse(h, w, (6, 0.15 * w), (0.15 * h, 0.15 * h))
    return paint(big | small, np.random.default_rng(seed)), big, small


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks (0 when both are empty)."""
    return float((a & b).sum() / max(1, (a | b).sum()))


def panning(h: int, w: int, frames: int, speed: int, rng: np.random.Generator, blur: float = 2.0):
    """A textured world (noise blurred by ``blur`` px) sliding ``speed`` px per frame (a panning camera) with a
    person square moving with it."""
    world = cv2.GaussianBlur(rng.uniform(0, 255, (h, w + speed * frames, 3)).astype(np.float32), (0, 0), blur)
    world = np.clip(world, 0, 255).astype(np.uint8)
    person = np.zeros(world.shape[:2], np.float32)
    person[h // 4 : 3 * h // 4, 40:80] = 1.0
    world[person > 0] = np.clip(world[person > 0].astype(int) + 60, 0, 255).astype(np.uint8)
    out = []
    for t in range(frames):
        x = speed * t
        out.append((np.ascontiguousarray(world[:, x : x + w]), np.ascontiguousarray(person[:, x : x + w])))
    return out


def edge_column(prob: np.ndarray) -> float:
    """Mean x of the person's right edge (first column after the square where the row drops below 0.5)."""
    cols = (prob[prob.shape[0] // 2 - 4 : prob.shape[0] // 2 + 4] >= 0.5).sum(axis=0) > 4
    return float(np.nonzero(cols)[0].max())
