"""Synthetic patterned backgrounds: stripes, flags, plaids, colour blocks and floral prints, draped like cloth.

The wallpapers in ``../shared/data/backgrounds`` are mostly smooth landscapes and abstract art. Real photos put
people in front of flags, striped curtains, posters and tiled walls, and a small network that never saw hard-edged,
saturated shapes behind a person tends to keep them as foreground (the flag beside Grace Hopper in the bundled
photo). ``pattern_background`` draws such a scene procedurally so the compositor can mix it in. The floral print
stands for printed cloth. The leaf print (``leaves``, session 45) stands for upholstery: outlined leaves with a
midrib, in muted tones a little lighter or darker than a muted ground. Every model through session 45 takes the
leaf-printed swing seat a boy sits in (a coco_train validation photo) for part of him, and blurring the seat's print
away in that photo lifts the default from 0.41 to 0.89 IoU: the print is what it takes for a person; the floral
blotches, saturated and unoutlined, do not look like it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

KINDS = ("stripes", "flag", "plaid", "blocks", "floral", "leaves")
#: What a run draws when its config names no kinds: the kinds from before ``leaves``, so older runs stay the same.
DEFAULT_KINDS = KINDS[:5]


def check_kinds(kinds: Sequence[str], name: str = "pattern kinds") -> tuple[str, ...]:
    """``kinds`` as a tuple, if it is a non-empty selection of ``KINDS``; ``name`` says what to call it in the error."""
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"{name} must be among {', '.join(KINDS)}, got {list(kinds)}")
    return tuple(kinds)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """Mostly saturated colours, with whites and darks, as in flags and printed cloth."""
    r = rng.random()
    if r < 0.2:
        return np.full(3, rng.uniform(215, 255), np.float32)  # white-ish
    if r < 0.3:
        return np.full(3, rng.uniform(10, 60), np.float32)  # dark
    hsv = np.array([[[rng.integers(0, 180), rng.integers(120, 256), rng.integers(90, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` colours, each clearly unlike the one before it (stripes of near-equal colours teach nothing)."""
    colours = [_colour(rng)]
    while len(colours) < n:
        c = _colour(rng)
        if np.abs(c - colours[-1]).max() > 80:
            colours.append(c)
    return np.stack(colours)


def _coords(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates, displaced by a slow wave so straight edges curve like hanging cloth."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    amp = rng.uniform(0, 0.04) * size
    period = rng.uniform(0.3, 1.2) * size
    phase = rng.uniform(0, 2 * np.pi)
    return x + amp * np.sin(2 * np.pi * y / period + phase), y + amp * np.sin(2 * np.pi * x / period + phase)


def _stripes(u: np.ndarray, width: float, colours: np.ndarray) -> np.ndarray:
    idx = np.floor(u / width).astype(np.int64) % len(colours)
    return colours[idx]


def _rotated(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(angle), np.sin(angle)
    return x * c + y * s, -x * s + y * c


def _floral(rng: np.random.Generator, size: int) -> np.ndarray:
    """A printed fabric: blotches of 2-4 colours (flowers, leaves) over a ground colour, sometimes muted towards
    grey as upholstery is; each colour's blotches are smoothed noise cut at a level, a motif 3-12% of the side."""
    colours = _palette(rng, int(rng.integers(3, 6)))
    mute = rng.uniform(0.0, 0.4)
    colours = colours * (1 - mute) + colours.mean(axis=1, keepdims=True) * mute
    image = np.empty((size, size, 3), np.float32)
    image[:] = colours[0]
    sigma = rng.uniform(0.01, 0.04) * size
    for colour in colours[1:]:
        noise = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), sigma)
        image[noise > np.quantile(noise, rng.uniform(0.55, 0.8))] = colour
    return image


def _leaves(rng: np.random.Generator, size: int) -> np.ndarray:
    """An upholstery print: leaves 6-20% of the side, each outlined, with a midrib, at any angle and overlapping,
    in tones of one muted hue a little lighter or darker than a muted ground."""
    grey = rng.uniform(70, 200)
    tint = _colour(rng)
    mute = rng.uniform(0.6, 0.9)
    ground = np.clip(grey + (tint - tint.mean()) * (1 - mute), 0, 255)
    canvas = np.empty((size, size, 3), np.uint8)
    canvas[:] = ground.astype(np.uint8)
    motif = rng.uniform(0.06, 0.2) * size
    t = np.linspace(-1.0, 1.0, 24)
    thickness = max(1, int(round(size / 200)))
    for _ in range(int(rng.uniform(3.0, 6.0) * (size / motif) ** 2)):  # a leaf covers ~1/4 of motif^2: dense
        length = motif * rng.uniform(0.7, 1.3)
        width = length * rng.uniform(0.25, 0.45)
        half = 0.5 * width * (1 - t**2) ** 0.8  # pointed at both ends
        outline = np.concatenate(
            [np.stack([t, half / length * 2], 1), np.stack([t[::-1], -half[::-1] / length * 2], 1)]
        )
        angle = rng.uniform(0, np.pi)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centre = rng.uniform(-0.1, 1.1, 2) * size
        pts = (outline * length / 2) @ rot.T + centre
        shade = rng.choice([-1.0, 1.0]) * rng.uniform(25, 80)
        fill = np.clip(ground + shade + rng.normal(0, 10, 3), 0, 255)
        line = np.clip(ground + shade - np.sign(shade) * rng.uniform(30, 70), 0, 255)
        poly = [np.round(pts).astype(np.int32)]
        cv2.fillPoly(canvas, poly, fill.tolist(), lineType=cv2.LINE_AA)
        cv2.polylines(canvas, poly, True, line.tolist(), thickness, lineType=cv2.LINE_AA)
        tip = (np.array([[-1.0, 0.0], [1.0, 0.0]]) * length / 2) @ rot.T + centre
        a, b = np.round(tip).astype(np.int32)
        cv2.line(canvas, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), line.tolist(), thickness, cv2.LINE_AA)
    return canvas.astype(np.float32)


def pattern_background(rng: np.random.Generator, size: int, kind: str | None = None) -> np.ndarray:
    """A ``size`` x ``size`` x 3 float32 RGB picture in [0, 255] of ``kind`` (one of ``KINDS``; random among
    ``DEFAULT_KINDS`` if None)."""
    if kind is None:
        kind = DEFAULT_KINDS[rng.integers(len(DEFAULT_KINDS))]
    elif kind not in KINDS:
        raise ValueError(f"unknown pattern kind {kind!r}; choose from {', '.join(KINDS)}")
    x, y = _coords(rng, size)
    if kind == "floral":
        image = _floral(rng, size)
    elif kind == "leaves":
        image = _leaves(rng, size)
    elif kind == "blocks":
        image = np.empty((size, size, 3), np.float32)
        image[:] = _palette(rng, 1)[0]
        for colour in _palette(rng, int(rng.integers(3, 9))):
            w, h = (rng.uniform(0.1, 0.7, 2) * size).astype(int)
            x0, y0 = rng.integers(-w // 2, size, 2)
            image[max(y0, 0) : y0 + h, max(x0, 0) : x0 + w] = colour
    else:
        angle = rng.normal(0, 0.15) + (np.pi / 2 if rng.random() < 0.3 else 0.0)
        u, v = _rotated(x, y, angle)
        width = rng.uniform(0.03, 0.15) * size
        colours = _palette(rng, 2 if kind == "flag" else int(rng.integers(2, 5)))
        image = _stripes(v, width, colours)
        if kind == "plaid":
            cross = _stripes(u, rng.uniform(0.03, 0.15) * size, _palette(rng, int(rng.integers(2, 4))))
            image = 0.5 * image + 0.5 * cross
        elif kind == "flag":  # a canton with a grid of dots (stars) in one corner
            cw, ch = rng.uniform(0.3, 0.6) * size, rng.uniform(0.3, 0.6) * size
            ox, oy = rng.uniform(-0.3, 0.7, 2) * size
            inside = (u >= ox) & (u < ox + cw) & (v >= oy) & (v < oy + ch)
            ground, dot = _palette(rng, 2)
            pitch = rng.uniform(0.03, 0.08) * size
            du, dv = (u - ox) % pitch - pitch / 2, (v - oy) % pitch - pitch / 2
            on_dot = du**2 + dv**2 < (pitch * rng.uniform(0.15, 0.35)) ** 2
            image = np.where(inside[..., None], np.where(on_dot[..., None], dot, ground), image)
    # Folds: slow light and shade across the picture, then the camera's softness.
    fold = 1.0 + rng.uniform(0, 0.35) * np.sin(2 * np.pi * x / (rng.uniform(0.15, 0.6) * size) + rng.uniform(0, 6))
    image = image * fold[..., None].astype(np.float32)
    if rng.random() < 0.5:
        k = int(rng.choice([3, 5, 7]))
        image = cv2.GaussianBlur(image, (k, k), 0)
    return np.clip(image, 0, 255).astype(np.float32)
