"""Mend masks of plain-backdrop studio photos from the photo itself.

Parsing-model labels of studio fashion photos (viton) often leave the neck and upper chest unlabelled. On a plain
backdrop the person is simply "whatever is not backdrop": fit the backdrop as a smooth colour field (a quadratic in
x and y per channel, robust to the mislabelled skin) to the pixels labelled background, mark the pixels that differ
clearly from it, and add those that touch the labelled person. Small enclosed gaps are closed; large ones (the
space between an arm and the body) are left alone.
"""

from __future__ import annotations

import cv2
import numpy as np


def _backdrop(rgb: np.ndarray, background: np.ndarray, tolerance: float, rounds: int = 3) -> np.ndarray:
    """Least-squares quadratic colour field over ``background`` pixels, refitted without outliers."""
    h, w = background.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx /= w
    yy /= h
    basis = np.stack([np.ones_like(xx), xx, yy, xx * xx, yy * yy, xx * yy], -1).reshape(-1, 6)
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    use = background.reshape(-1)
    coef = np.zeros((6, 3), np.float32)
    for _ in range(rounds):
        if use.sum() < 6:
            break
        coef, *_ = np.linalg.lstsq(basis[use], pixels[use], rcond=None)
        use = use & (np.abs(pixels - basis @ coef).max(1) < tolerance)
    return (basis @ coef).reshape(h, w, 3)


def repair_backdrop_mask(
    rgb: np.ndarray,
    mask: np.ndarray,
    threshold: float = 30.0,
    reach: int = 15,
    max_hole: float = 0.002,
) -> np.ndarray:
    """Return ``mask`` (float32 HxW in [0,1]) with unlabelled person pixels on a plain backdrop added.

    ``threshold``: colour distance (max over channels, 0-255) from the fitted backdrop that counts as person.
    ``reach``: only pixels within this many pixels of the labelled person are added.
    ``max_hole``: enclosed background gaps smaller than this fraction of the image are filled.
    """
    hard = (mask > 0.5).astype(np.uint8)
    if hard.all() or not hard.any():
        return mask
    background = cv2.erode(1 - hard, np.ones((5, 5), np.uint8)) > 0
    backdrop = _backdrop(rgb, background, tolerance=20.0)
    differs = (np.abs(rgb.astype(np.float32) - backdrop).max(2) > threshold).astype(np.uint8)
    differs = cv2.morphologyEx(differs, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    near = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    union = (differs & near) | hard
    _, labels = cv2.connectedComponents(union)
    person = np.isin(labels, np.unique(labels[hard > 0])).astype(np.uint8)
    gaps = 1 - person
    _, labels, stats, _ = cv2.connectedComponentsWithStats(gaps)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < max_hole * gaps.size)
    person[np.isin(labels, small) & (gaps > 0)] = 1
    # Keep the soft values of the original where it already said "person".
    return np.maximum(mask, person.astype(np.float32))
