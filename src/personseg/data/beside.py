"""Things beside people: textured shapes pasted behind a person, touching their outline, labelled background.

The shipped models' remaining errors on real photos are mostly things touching or next to a person taken as part
of them: a patterned armchair a boy sits in, a dog beside a hand, the flag strip between the astronaut's arm and
the photo's edge, flower baskets above a dancer, a swing's seat. The synthetic flags (``data.patterns``) only put
patterns *behind* whole scenes. ``BesideObjects`` puts a few shapes of such textures (flags, stripes, plaids,
scene photos, cloth cut from the person's own clothes) right against a person in a training photo or composite,
behind them: pixels already labelled person are left as they are, and the label is not changed, so every pasted
pixel is background the network must learn to leave out.

The shapes are smooth blobs (chairs, animals, bags) or turned rectangles (posters, boxes), 15-60% of the person's
height, centred just outside a point of their outline so that they touch it. A share ``large`` of them is drawn
around the person instead: 0.8-1.4 times their height, centred near their middle, as the armchair the boy sits in
surrounds him (the small shapes never did: both shipped models kept that chair).

The large shapes were still flat, saturated stickers, which a network tells from a real chair by its look alone
(every model through session 44 kept the boy's armchair: IoU 0.41-0.44 where MediaPipe scores 0.81). A share
``cushions`` of the large shapes is drawn as upholstery instead (:func:`cushion_shading`): the texture muted towards
grey, split by one or two seams into cushions, each darker towards its edges and seams as a padded cushion is.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from personseg.data.patterns import DEFAULT_KINDS, check_kinds, pattern_background

#: (texture source, probability): synthetic patterns, crops of the background photos, cloth from the person.
TEXTURES = (("pattern", 0.45), ("photo", 0.4), ("cloth", 0.15))


def _blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A float32 ``h`` x ``w`` shape in [0, 1]: a smooth star-convex blob or a turned rectangle, soft-edged."""
    shape = np.zeros((h, w), np.uint8)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    if rng.random() < 0.3:
        box = ((cx, cy), (w * rng.uniform(0.6, 0.95), h * rng.uniform(0.6, 0.95)), float(rng.uniform(-30, 30)))
        cv2.fillPoly(shape, [cv2.boxPoints(box).astype(np.int32)], 1)
    else:
        theta = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        radius = np.ones_like(theta)
        for k in range(2, 5):
            radius += rng.uniform(0, 0.25 / (k - 1)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        radius /= radius.max()
        pts = np.stack([cx + 0.5 * w * radius * np.cos(theta), cy + 0.5 * h * radius * np.sin(theta)], axis=1)
        cv2.fillPoly(shape, [np.round(pts).astype(np.int32)], 1)
    return cv2.GaussianBlur(shape.astype(np.float32), (3, 3), 0)


def cushion_shading(rng: np.random.Generator, shape: np.ndarray) -> np.ndarray:
    """Light on upholstery, for a float ``shape`` (HxW in [0, 1]): float32 HxW in [0.45, 1.05], brightest in the
    middle of each cushion and darkest at the shape's edge and along one or two seams across it."""
    h, w = shape.shape
    solid = (shape > 0.5).astype(np.uint8)
    for _ in range(int(rng.integers(1, 3))):  # seams: where one cushion meets the next
        if rng.random() < 0.5:
            x = int(w * rng.uniform(0.3, 0.7))
            cv2.line(solid, (x, 0), (x + int(w * rng.uniform(-0.1, 0.1)), h - 1), 0, max(1, w // 60))
        else:
            y = int(h * rng.uniform(0.3, 0.7))
            cv2.line(solid, (0, y), (w - 1, y + int(h * rng.uniform(-0.1, 0.1))), 0, max(1, h // 60))
    depth = cv2.distanceTransform(cv2.copyMakeBorder(solid, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0), cv2.DIST_L2, 3)
    depth = depth[1:-1, 1:-1]
    padding = max(2.0, rng.uniform(0.06, 0.15) * min(h, w))  # how far in from a seam the cushion is full
    puff = np.sqrt(np.clip(depth / padding, 0.0, 1.0))
    return (0.45 + 0.6 * puff).astype(np.float32)


def _muted(tex: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``tex`` moved part of the way to its own grey: upholstery prints are rarely a flag's colours."""
    grey = tex.mean(axis=2, keepdims=True)
    k = rng.uniform(0.3, 0.8)
    return tex * (1 - k) + grey * k


def _sides(size: float, aspect: float) -> tuple[int, int]:
    """(height, width) of a shape of geometric-mean side ``size`` and height/width ``aspect``, at least 8 px each."""
    return max(8, int(size * np.sqrt(aspect))), max(8, int(size / np.sqrt(aspect)))


class BesideObjects:
    """``objects(image, mask, rng) -> image``: a share ``prob`` of samples get 1 to ``max_objects`` shapes.

    ``image``: uint8 HxWx3; ``mask``: float32 HxW in [0, 1], with ``data.folder.IGNORE`` (-1) where the label is
    unknown (nothing is pasted there). ``backgrounds``: person-free photos for the photo textures (none: patterns
    and cloth only). ``large``: share of shapes drawn around the person (0.8-1.4x their height) instead of beside
    them. ``cushions``: share of those large shapes drawn as upholstery (:func:`cushion_shading`). Samples with
    fewer than 64 person pixels come back as they are, as does the label always.
    """

    def __init__(
        self,
        backgrounds: Sequence[np.ndarray],
        prob: float,
        pattern_kinds: Sequence[str] = DEFAULT_KINDS,
        max_objects: int = 3,
        large: float = 0.0,
        cushions: float = 0.0,
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must lie in [0, 1], got {prob}")
        if not 0.0 <= large <= 1.0:
            raise ValueError(f"large must lie in [0, 1], got {large}")
        if not 0.0 <= cushions <= 1.0:
            raise ValueError(f"cushions must lie in [0, 1], got {cushions}")
        if max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {max_objects}")
        self.backgrounds = list(backgrounds)
        self.prob = prob
        self.pattern_kinds = check_kinds(pattern_kinds)
        self.max_objects = max_objects
        self.large = large
        self.cushions = cushions
        # Which texture each shape takes, by TEXTURES' shares; no photo textures without background photos.
        self.texture_names = [name for name, _ in TEXTURES]
        shares = np.array([0.0 if name == "photo" and not self.backgrounds else p for name, p in TEXTURES])
        self.texture_probs = shares / shares.sum()

    def _texture(self, rng: np.random.Generator, h: int, w: int, image: np.ndarray, inside: np.ndarray) -> np.ndarray:
        """An h x w float32 texture; ``inside``: the person's distance to the background (for the cloth)."""
        kind = self.texture_names[rng.choice(len(self.texture_names), p=self.texture_probs)]
        tex = None
        if kind == "cloth":  # a patch from inside the person: a shirt on a chair, clothes on a rack
            ys, xs = np.nonzero(inside >= 3)
            if len(ys):
                i = rng.integers(len(ys))
                half = int(min(max(3, min(h, w) * rng.uniform(0.1, 0.3)), inside[ys[i], xs[i]]))
                patch = image[ys[i] - half : ys[i] + half, xs[i] - half : xs[i] + half]  # inside the person
                tex = cv2.resize(patch, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
                if h == w:
                    tex = np.ascontiguousarray(np.rot90(tex, int(rng.integers(4))))
        if tex is None and kind == "photo":
            bg = self.backgrounds[rng.integers(len(self.backgrounds))]
            bh, bw = bg.shape[:2]
            ch, cw = max(2, int(bh * rng.uniform(0.15, 0.6))), max(2, int(bw * rng.uniform(0.15, 0.6)))
            y, x = rng.integers(0, bh - ch + 1), rng.integers(0, bw - cw + 1)
            tex = cv2.resize(bg[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        if tex is None:
            kind_name = self.pattern_kinds[rng.integers(len(self.pattern_kinds))]
            tex = pattern_background(rng, max(h, w), kind_name)[:h, :w]
        # Light falling across the object, so it is not flat-lit like a sticker.
        across = rng.random() < 0.5
        ramp = np.linspace(rng.uniform(0.7, 1.1), rng.uniform(0.7, 1.1), w if across else h, dtype=np.float32)
        return tex * (ramp[None, :, None] if across else ramp[:, None, None])

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.prob or rng.random() >= self.prob:
            return image
        person = (mask > 0.5).astype(np.uint8)
        if person.sum() < 64:
            return image
        outline = person.astype(bool) & ~cv2.erode(person, np.ones((3, 3), np.uint8)).astype(bool)
        oy, ox = np.nonzero(outline)
        ys, xs = np.nonzero(person)
        person_h = float(ys.max() - ys.min() + 1)
        middle = np.array([(ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2])
        # Distance to the background, the photo's edge counting as background (so cloth patches stay in the photo).
        inside = cv2.distanceTransform(
            cv2.copyMakeBorder(person, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0), cv2.DIST_L2, 3
        )[1:-1, 1:-1]
        # The outward normal of the outline: down the slope of the smoothed person mask (on limbs and concave
        # outlines too, where the direction away from the centre of mass points into the body).
        smooth = cv2.GaussianBlur(person.astype(np.float32), (0, 0), max(1.5, 0.03 * person_h))
        ny, nx = -cv2.Sobel(smooth, cv2.CV_32F, 0, 1), -cv2.Sobel(smooth, cv2.CV_32F, 1, 0)
        height, width = mask.shape
        # Behind the person: only where the label is background (soft edges blend), never on unknown pixels.
        free = np.where(mask < 0, 0.0, 1.0 - np.clip(mask, 0.0, 1.0)).astype(np.float32)
        out = image.astype(np.float32)
        for _ in range(1 + int(rng.integers(self.max_objects))):
            cushion = False
            if self.large and rng.random() < self.large:  # around them: an armchair, a sofa, a rack behind
                cushion = bool(self.cushions) and rng.random() < self.cushions
                size = float(np.clip(person_h * rng.uniform(0.8, 1.4), 12, 2 * max(height, width)))
                h, w = _sides(size, rng.uniform(0.6, 1.5))
                # Centred within a fifth of its size of the person's middle: it covers the middle, so it touches.
                cy, cx = middle + rng.uniform(-0.2, 0.2, 2) * np.array([h, w])
            else:
                i = rng.integers(len(oy))
                size = float(np.clip(person_h * rng.uniform(0.15, 0.6), 12, max(height, width)))
                h, w = _sides(size, rng.uniform(0.5, 2.0))
                away = np.array([ny[oy[i], ox[i]], nx[oy[i], ox[i]]], np.float64)
                away /= max(np.linalg.norm(away), 1e-6)
                # Centre outside the outline by less than the shape's half-size: it overlaps the outline, so it
                # touches.
                cy, cx = np.array([oy[i], ox[i]]) + away * rng.uniform(0.1, 0.4) * np.array([h, w])
            y0, x0 = int(round(cy - h / 2)), int(round(cx - w / 2))
            sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y0 + h, height), min(x0 + w, width)
            if sy1 <= sy0 or sx1 <= sx0:
                continue
            whole = _blob(rng, h, w)
            shape = whole[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
            tex = self._texture(rng, h, w, image, inside)
            if cushion:
                tex = _muted(tex, rng) * cushion_shading(rng, whole)[..., None]
            tex = tex[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
            a = (shape * free[sy0:sy1, sx0:sx1])[..., None]
            region = out[sy0:sy1, sx0:sx1]
            region[:] = region * (1 - a) + tex * a
        return np.clip(out, 0, 255).astype(np.uint8)
