"""Background compositing: paste people onto scenes so training sees far more than fashion backdrops.

Foregrounds are RGBA cut-outs (soft alpha) or images whose mask is an exact matte (plain-background studio
photos). Each sample pastes 1-3 people at sizes from "small figure in the scene" to "portrait cropped by the
frame" onto a random crop of a background photo (optionally, for a share ``pattern_prob`` of samples, with a
synthetic flag, stripes, plaid or colour blocks from ``data.patterns`` over all or part of it); the target is the
union of the pasted alphas. A share ``rotate_prob`` of the whole-body people is turned to any angle first: people
upside down, cartwheeling or lying, in an upright scene (the real photos show almost none).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from personseg.data.folder import IMAGE_EXTENSIONS, PairedFolder
from personseg.data.patterns import DEFAULT_KINDS, check_kinds, pattern_background

log = logging.getLogger(__name__)

#: (rgb uint8 HxWx3, alpha float32 HxW, cut_at_bottom): cropped to the person; ``cut_at_bottom`` marks people
#: cut off by the bottom of their photo (upper-body shots), who must then stand on the bottom of the frame.
Foreground = tuple[np.ndarray, np.ndarray, bool]


def _crop_to_alpha(rgb: np.ndarray, alpha: np.ndarray, pad: int = 2) -> Foreground | None:
    ys, xs = np.nonzero(alpha > 0.05)
    if len(ys) < 50:
        return None
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, alpha.shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, alpha.shape[1])
    cut_at_bottom = bool(ys.max() >= alpha.shape[0] - 2)
    return np.ascontiguousarray(rgb[y0:y1, x0:x1]), np.ascontiguousarray(alpha[y0:y1, x0:x1]), cut_at_bottom


def load_cutouts(folder: str | Path) -> list[Foreground]:
    """RGBA PNG cut-outs in ``folder``."""
    out = []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() != ".png":
            continue
        with Image.open(path) as im:
            rgba = np.asarray(im.convert("RGBA"))
        fg = _crop_to_alpha(rgba[..., :3], rgba[..., 3].astype(np.float32) / 255.0)
        if fg is not None:  # cut-outs are cropped tight around whole people: feet at the edge are not a cut
            out.append((fg[0], fg[1], False))
    if not out:
        raise ValueError(f"{folder}: no RGBA cut-outs (*.png) found")
    return out


def foregrounds_from_pairs(folder: PairedFolder) -> list[Foreground]:
    """Use image/mask pairs with exact mattes as cut-outs; the mask edge is eroded and softened by a pixel
    so the plain studio background does not leak in as a bright rim. A small closing first mends the
    unlabelled necks that parsing-model masks often have."""
    kernel = np.ones((3, 3), np.uint8)
    closing = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    out = []
    for i in range(len(folder)):
        rgb, mask = folder[i]
        hard = cv2.morphologyEx((mask > 0.5).astype(np.uint8), cv2.MORPH_CLOSE, closing)
        alpha = cv2.GaussianBlur(cv2.erode(hard, kernel).astype(np.float32), (3, 3), 0.8)
        fg = _crop_to_alpha(rgb, alpha)
        if fg is not None:
            out.append(fg)
    return out


def load_backgrounds(folder: str | Path, max_side: int = 640) -> list[np.ndarray]:
    """Photos without people, downscaled once so crops are cheap."""
    out = []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            out.append(np.asarray(im))
    if not out:
        raise ValueError(f"{folder}: no background images found")
    return out


class Compositor:
    """``compositor(rng) -> (rgb uint8 SxSx3, alpha float32 SxS)``.

    ``pattern_prob``: share of samples whose background gets a synthetic pattern of one of ``pattern_kinds``.
    ``rotate_prob``: share of whole-body people (not upper-body shots, whose cut edge must stay at the bottom)
    turned by an angle drawn uniformly from [-180, 180) degrees.
    """

    def __init__(
        self,
        foregrounds: Sequence[Foreground],
        backgrounds: Sequence[np.ndarray],
        size: int,
        max_people: int = 3,
        pattern_prob: float = 0.0,
        pattern_kinds: Sequence[str] = DEFAULT_KINDS,
        rotate_prob: float = 0.0,
    ) -> None:
        if not foregrounds or not backgrounds:
            raise ValueError("compositing needs at least one foreground and one background")
        for name, share in (("pattern_prob", pattern_prob), ("rotate_prob", rotate_prob)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {share}")
        self.foregrounds = foregrounds
        self.backgrounds = backgrounds
        self.size = size
        self.max_people = max_people
        self.pattern_prob = pattern_prob
        self.pattern_kinds = check_kinds(pattern_kinds)
        self.rotate_prob = rotate_prob

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        crop = self._photo_background(rng)
        if self.pattern_prob and rng.random() < self.pattern_prob:
            # A flag or hanging cloth covers the whole frame or a rectangle of it (a wall hanging, a banner).
            kind = self.pattern_kinds[rng.integers(len(self.pattern_kinds))]
            pattern, s = pattern_background(rng, self.size, kind), self.size
            if rng.random() < 0.3:
                return pattern
            w, h = (rng.uniform(0.3, 0.9, 2) * s).astype(int)
            x, y = int(rng.integers(-w // 3, s - w // 2)), int(rng.integers(-h // 3, s - h // 2))
            crop[max(y, 0) : y + h, max(x, 0) : x + w] = pattern[max(y, 0) : y + h, max(x, 0) : x + w]
        return crop

    def _photo_background(self, rng: np.random.Generator) -> np.ndarray:
        bg = self.backgrounds[rng.integers(len(self.backgrounds))]
        h, w = bg.shape[:2]
        side = int(min(h, w) * rng.uniform(0.35, 1.0))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = cv2.resize(bg[y : y + side, x : x + side], (self.size, self.size), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.3:  # shallow depth of field behind the subject
            k = int(rng.choice([3, 5, 7, 9]))
            crop = cv2.GaussianBlur(crop, (k, k), 0)
        return crop.astype(np.float32)

    def _person_height(self, rng: np.random.Generator) -> float:
        """Height as a fraction of the frame: portraits cropped by the frame, mid shots, small figures."""
        r = rng.random()
        if r < 0.3:
            return rng.uniform(0.8, 1.6)
        if r < 0.75:
            return rng.uniform(0.4, 0.85)
        return rng.uniform(0.12, 0.4)

    def __call__(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        s = self.size
        image = self._background(rng)
        alpha_total = np.zeros((s, s), np.float32)
        n = 1 + int(rng.choice(self.max_people, p=_people_probs(self.max_people)))
        for _ in range(n):
            rgb, alpha, cut_at_bottom = self.foregrounds[rng.integers(len(self.foregrounds))]
            h = max(8, int(self._person_height(rng) * s))
            w = max(4, int(round(rgb.shape[1] * h / rgb.shape[0])))
            if w > 2 * s:
                continue
            interp = cv2.INTER_AREA if h < rgb.shape[0] else cv2.INTER_LINEAR
            fg = cv2.resize(rgb, (w, h), interpolation=interp).astype(np.float32)
            a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
            if rng.random() < 0.5:
                fg, a = fg[:, ::-1], a[:, ::-1]
            if not cut_at_bottom and self.rotate_prob and rng.random() < self.rotate_prob:
                fg, a = _rotate(fg, a, float(rng.uniform(-180.0, 180.0)))
                h, w = a.shape
            if rng.random() < 0.5:  # light the person a little differently from the scene
                fg = np.clip(fg * rng.uniform(0.75, 1.2) + rng.uniform(-15, 15, size=3), 0, 255)
            x = int(rng.integers(-w // 3, s - 2 * w // 3 + 1)) if w < s else int(rng.integers(s - w, 1))
            if cut_at_bottom:  # an upper-body shot: its cut edge must leave the frame at the bottom
                y = int(rng.uniform(-0.05 * h, max(0.0, s - h * 0.9))) if h < s else int(rng.uniform(-0.05, 0.3) * s)
                y = max(y, s - h)
            elif h > 0.8 * s:  # a big full figure: head near the top, legs cropped by the frame
                y = int(rng.uniform(-0.05, 0.3) * s)
            else:
                y = int(rng.integers(0, max(1, s - h // 2)))
            _paste(image, alpha_total, fg, a, x, y)
        return np.clip(image, 0, 255).astype(np.uint8), alpha_total


def _rotate(fg: np.ndarray, a: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """``fg`` and its alpha turned by ``degrees`` on a canvas large enough to hold all of it."""
    h, w = a.shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    m[0, 2] += nw / 2.0 - w / 2.0
    m[1, 2] += nh / 2.0 - h / 2.0
    # Colours spread past the edge (no dark rim where the soft alpha meets the new corners); alpha is 0 there.
    rgb = cv2.warpAffine(fg, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(a, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return rgb, alpha


def _people_probs(max_people: int) -> np.ndarray:
    p = np.array([0.6, 0.28, 0.12][:max_people] + [0.05] * max(0, max_people - 3))
    return p / p.sum()


def _paste(image: np.ndarray, alpha_total: np.ndarray, fg: np.ndarray, a: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend ``fg`` at (x, y) into ``image`` in place, clipped to the frame; union into alpha_total."""
    s_h, s_w = alpha_total.shape
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + fg.shape[0], s_h), min(x + fg.shape[1], s_w)
    if y1 <= y0 or x1 <= x0:
        return
    fg = fg[y0 - y : y1 - y, x0 - x : x1 - x]
    a = a[y0 - y : y1 - y, x0 - x : x1 - x]
    region = image[y0:y1, x0:x1]
    region[:] = region * (1 - a[..., None]) + fg * a[..., None]
    np.maximum(alpha_total[y0:y1, x0:x1], a, out=alpha_total[y0:y1, x0:x1])
