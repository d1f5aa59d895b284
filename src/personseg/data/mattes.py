"""Boundary targets from a matting peer: a hand label's interior, a matte's edge.

Hand polygons (ccp, fasseg_heads) and parsing-model labels (viton) place a person's outline to within a few
pixels and never soft: hair, motion blur and thin gaps between arms and body are all-or-nothing. A portrait
matting model (MODNet, ``scripts/make_mattes.py``) draws that outline better on single-person photos but can be
wrong as a whole (a missed leg, a bystander or a chair taken in). :func:`boundary_target` takes the best of both:

* the **band**: pixels within ``band_fraction`` of the photo's diagonal (at least 2 px) of the label's outline, on
  either side; the boundary IoU scores 2% deep, so the matte moves the edge only where that metric looks;
* the **agreement** of matte and label near the person but off the band (within ``NEAR`` band widths of the
  outline): the IoU of the matte (> 0.5) and the label there. Far from the person it is not asked: ccp labels
  only the main person, and MODNet often keeps a bystander a few steps away;
* with agreement of at least ``min_agreement`` the band takes the matte's values and the rest keeps the label;
  otherwise the label is kept as it is (the matte is wrong somewhere that matters).

The matte never adds or removes anything away from the labelled outline, so a bystander MODNet keeps in a ccp photo
(where only the main person is labelled) stays background, and a person it misses entirely rejects the matte.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

BAND_FRACTION = 0.01
MIN_AGREEMENT = 0.95
#: How far from the outline (in band widths) matte and label must agree.
NEAR = 5


def read_matte(path: str | Path) -> np.ndarray:
    """An 8-bit matte PNG as HxW float32 in [0, 1] (always /255: a faint matte is not a 0/1 mask)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def _disc(width: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))


def boundary_band(label: np.ndarray, width: int) -> np.ndarray:
    """Boolean HxW: pixels within ``width`` px of the outline of ``label > 0.5`` (on either side)."""
    person = (label > 0.5).astype(np.uint8)
    kernel = _disc(width)
    grown = cv2.dilate(person, kernel).astype(bool)
    # Replicated borders: where the person is cut by the photo's edge there is no outline.
    shrunk = cv2.erode(person, kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
    return grown & ~shrunk


def band_width(shape: tuple[int, int], band_fraction: float = BAND_FRACTION) -> int:
    """The band's half-width in pixels for an image of ``shape``: ``band_fraction`` of its diagonal, at least 2."""
    return max(2, round(band_fraction * float(np.hypot(*shape))))


def boundary_target(
    label: np.ndarray,
    matte: np.ndarray,
    band_fraction: float = BAND_FRACTION,
    min_agreement: float = MIN_AGREEMENT,
) -> np.ndarray | None:
    """``label`` (HxW float32 in [0, 1]; -1 = unknown, left as is) with its outline band taken from ``matte`` (HxW
    in [0, 1], the same size), or None when the two disagree near the person off the band (IoU <
    ``min_agreement``) or the label has no person."""
    if label.shape != matte.shape:
        raise ValueError(
            f"matte is {matte.shape[1]}x{matte.shape[0]} but the label is {label.shape[1]}x{label.shape[0]}"
        )
    known, person = label >= 0, label > 0.5
    if not person.any():
        return None
    width = band_width(label.shape, band_fraction)
    band = boundary_band(label, width)
    near = cv2.dilate(person.astype(np.uint8), _disc(NEAR * width)).astype(bool)  # the person and its surroundings
    off = known & near & ~band
    mine, theirs = person & off, (matte > 0.5) & off
    union = np.count_nonzero(mine | theirs)
    if union == 0 or np.count_nonzero(mine & theirs) / union < min_agreement:
        return None
    take = band & known
    out = label.astype(np.float32, copy=True)
    out[take] = matte[take]
    return out
