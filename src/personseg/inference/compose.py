"""Turning an image and its alpha into pictures: mask, cut-out, new backgrounds, the side-by-side comparison.

All functions take RGB uint8 images and float32 alpha in [0, 1] of the same height and width and return
uint8 arrays (RGB, RGBA or gray); nothing here reads or writes files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import ImageColor

#: Pixels per band of rows in the per-pixel arithmetic below: float temporaries stay ~50 MB whatever the image.
BAND_PIXELS = 1 << 20


def _bands(height: int, width: int):
    step = max(1, BAND_PIXELS // max(1, width))
    for y in range(0, height, step):
        yield slice(y, y + step)


def alpha_to_uint8(alpha: np.ndarray) -> np.ndarray:
    """Alpha in [0, 1] as H x W uint8, rounded."""
    out = np.empty(alpha.shape, np.uint8)
    for rows in _bands(*alpha.shape[:2]):
        band = np.clip(alpha[rows], 0.0, 1.0)
        band *= 255.0
        band += 0.5
        out[rows] = band  # truncates, as astype(np.uint8) does
    return out


def cutout(foreground: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """H x W x 4 RGBA: the (foreground-estimated) colours with ``alpha`` as transparency.

    Fully transparent pixels are black: the old background is not hidden in the file (anyone can drop the
    alpha channel), and the PNG is about a third smaller and quicker to encode.
    """
    a = alpha_to_uint8(alpha)
    rgb = cv2.bitwise_and(foreground, foreground, mask=(a != 0).view(np.uint8))  # black where a == 0
    return np.dstack([rgb, a])


def over(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Porter-Duff "over": ``foreground`` with ``alpha`` on ``background`` (RGB, or RGBA for a see-through one).

    Returns RGB for an RGB background, RGBA for an RGBA one. Computed a band of rows at a time.
    """
    h, w = alpha.shape
    out = np.empty((h, w, background.shape[2]), np.uint8)
    for rows in _bands(h, w):
        out[rows] = _over(foreground[rows], alpha[rows], background[rows])
    return out


def _over(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    a = alpha[..., None].astype(np.float32)
    fg = foreground.astype(np.float32)
    if background.shape[2] == 3:
        out = fg * a + background.astype(np.float32) * (1.0 - a)
        return (out + 0.5).astype(np.uint8)
    bg_a = background[..., 3:].astype(np.float32) / 255.0
    out_a = a + bg_a * (1.0 - a)
    rgb = (fg * a + background[..., :3].astype(np.float32) * bg_a * (1.0 - a)) / np.maximum(out_a, 1e-6)
    return np.dstack([(rgb + 0.5).astype(np.uint8), alpha_to_uint8(out_a[..., 0])])


#: CSS ``rgb()`` / ``rgba()`` as browsers (and Gradio's colour picker) write them: numbers may have decimals and
#: the alpha is a fraction 0..1 (``rgba(255, 128, 0, 0.5)``); Pillow reads only whole numbers and alpha 0..255.
_CSS_RGB = re.compile(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*([\d.]+)\s*)?\)")


def parse_color(color: str | Sequence[int]) -> tuple[int, ...]:
    """A colour as a 3-tuple (RGB) or 4-tuple (RGBA) of 0..255.

    Accepts ``(R, G, B[, A])``, the text ``R,G,B[,A]`` (0..255), ``#RRGGBB[AA]`` / ``#RGB``, a CSS colour name such
    as ``red``, ``hsl(...)`` (``PIL.ImageColor``) and ``rgb(r, g, b)`` / ``rgba(r, g, b, a)``: an alpha of at most 1 or
    with a decimal point is a CSS fraction (``1`` is opaque, as browsers write it), a whole number above 1 is
    0..255 (Pillow's form). ValueError says which forms work.
    """
    if isinstance(color, str):
        text = color.strip().lower()
        parts = [p for p in text.replace(" ", "").split(",") if p]
        css = _CSS_RGB.fullmatch(text)
        try:
            if len(parts) in (3, 4) and all(p.lstrip("+-").isdigit() for p in parts):
                values = tuple(int(p) for p in parts)
            elif css:
                rgb = [round(float(v)) for v in css.groups()[:3]]
                alpha = css.group(4)
                if alpha is None:
                    values = tuple(rgb)
                elif "." in alpha or float(alpha) <= 1:  # CSS: a fraction, 1 is opaque
                    values = (*rgb, round(float(alpha) * 255))
                else:  # Pillow's form: a whole number 0..255
                    values = (*rgb, int(alpha))
            else:
                values = ImageColor.getrgb(text)
        except ValueError:
            raise ValueError(
                f"{color!r} is not a colour: use R,G,B or R,G,B,A (0-255), #RRGGBB[AA], rgb()/rgba() "
                "or a name like white"
            ) from None
    else:
        try:
            values = tuple(color)
            ok = len(values) in (3, 4) and all(float(c) == int(c) for c in values)
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise ValueError(f"a colour is 3 or 4 whole numbers (R, G, B[, A]) or a name like 'red', got {color!r}")
        values = tuple(int(c) for c in values)
    if not all(0 <= c <= 255 for c in values):
        raise ValueError(f"{color!r}: colour values must be in 0..255")
    return values


def color_background(height: int, width: int, color: str | Sequence[int]) -> np.ndarray:
    """A plain RGB (3 values) or RGBA (4 values) background; ``color`` as :func:`parse_color` takes it."""
    color = parse_color(color)
    return np.broadcast_to(np.asarray(color, np.uint8), (height, width, len(color)))


def cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` scaled to cover ``height x width`` (aspect ratio kept) and centre-cropped to it."""
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    top, left = (nh - height) // 2, (nw - width) // 2
    return resized[top : top + height, left : left + width]


def blurred_background(image: np.ndarray, alpha: np.ndarray, sigma: float) -> np.ndarray:
    """The image's own background blurred with a Gaussian of ``sigma`` pixels, the person left out.

    A plain blur smears the person into a halo around them; blurring ``image * (1 - alpha)`` and dividing
    by the blurred ``1 - alpha`` (normalized convolution) fills that area from the surrounding background.
    Large blurs run on a downscaled copy: the result is smooth anyway.
    """
    if sigma <= 0:
        raise ValueError(f"background blur must be > 0 pixels, got {sigma}")
    h, w = image.shape[:2]
    # A whole-number factor, with the last rows and columns that do not fill a block left out, takes OpenCV's
    # block-average path: ~2.5x faster than an area resize by 3.75 on a 720p frame (the blur hides the <f px).
    factor = max(1, min(round(sigma / 4.0), h, w))
    size = (w // factor, h // factor)
    whole = (slice(0, size[1] * factor), slice(0, size[0] * factor))  # the rows and columns that fill blocks
    img = cv2.resize(image[whole], size, interpolation=cv2.INTER_AREA).astype(np.float32)
    bg = 1.0 - cv2.resize(alpha[whole], size, interpolation=cv2.INTER_AREA)
    s = sigma / factor
    num = cv2.GaussianBlur(img * bg[..., None], (0, 0), s, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(bg, (0, 0), s, borderType=cv2.BORDER_REFLECT)[..., None]
    plain = cv2.GaussianBlur(img, (0, 0), s, borderType=cv2.BORDER_REFLECT)
    # Where no background is near (den ~ 0) fall back to the plain blur.
    out = np.where(den > 1e-3, num / np.maximum(den, 1e-6), plain)
    return cv2.resize(np.clip(out + 0.5, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)


def checkerboard(height: int, width: int, square: int | None = None) -> np.ndarray:
    """The grey checkerboard that shows transparency (squares ~1/40 of the longer side by default)."""
    square = square or max(4, max(height, width) // 40)
    y = (np.arange(height) // square)[:, None]
    x = (np.arange(width) // square)[None, :]
    tile = np.where((x + y) % 2 == 0, 204, 153).astype(np.uint8)
    return np.repeat(tile[..., None], 3, axis=2)


def comparison(
    image: np.ndarray, alpha: np.ndarray, cut: np.ndarray, max_height: int = 1024, max_width: int = 8192
) -> np.ndarray:
    """Original | mask | cut-out on a checkerboard, side by side, scaled down to at most ``max_height`` rows
    and ``max_width`` columns in all (a panorama too: JPEG holds at most 65500 pixels a side)."""
    h, w = image.shape[:2]
    scale = min(1.0, max_height / h, max_width / (3 * w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))

    def fit(x: np.ndarray) -> np.ndarray:
        return x if scale == 1.0 else cv2.resize(x, size, interpolation=cv2.INTER_AREA)

    small_cut = fit(cut)
    board = checkerboard(size[1], size[0])
    on_board = over(small_cut[..., :3], small_cut[..., 3].astype(np.float32) / 255.0, board)
    mask = np.repeat(alpha_to_uint8(fit(alpha))[..., None], 3, axis=2)
    return np.hstack([fit(image), mask, on_board])


def person_box(alpha: np.ndarray, threshold: float = 0.5, margin: float = 0.05) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the people in ``alpha``, grown by ``margin`` x the box size on each side.

    ``None`` if there is no pixel above ``threshold``.
    """
    rows = np.flatnonzero((alpha >= threshold).any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero((alpha >= threshold).any(0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    dy, dx = round(margin * (bottom - top)), round(margin * (right - left))
    h, w = alpha.shape
    return max(0, top - dy), min(h, bottom + dy), max(0, left - dx), min(w, right + dx)
