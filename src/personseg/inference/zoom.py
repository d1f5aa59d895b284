"""A second look at the people: the network run again on the part of the photo where it found them.

A network with a fixed input sees a 854x480 video frame at 384x216, and the people in it smaller still: a person
standing in the frame fills a tall, narrow box that, cut out and letterboxed on its own, reaches the network at
twice the pixels. :func:`zoom_box` finds that box on the first pass's probability; :class:`Segmenter` runs the
crop through the network and :func:`merge` averages the two probabilities inside it (the first pass keeps the
context, the second the detail). Measured on the real-scene benchmark with personseg-default (v3 at 384, int8):
davis_people 0.756 -> 0.798 IoU, coco_train 0.585 -> 0.598, camvid's small people 0.457 -> 0.564; ccp and
fasseg_heads, whose people fill the photo, never trigger it (docs/experiments.md). Replacing the first pass inside
the box instead of averaging scored lower then (davis_people 0.783), as did weighting either pass 0.65. The v17
default, which sees its crop at up to twice the pixels, does better trusting the crop: weighted 0.85 (its metadata
since session 41) its macro average rises 0.839 / 0.647 -> 0.843 / 0.651 at no extra cost.

A model asks for it in its metadata (``"zoom": {"min_gain": 1.15, "margin": 0.1}``, see :func:`zoom_settings`);
``predict(..., zoom=False)`` or ``--no-zoom`` turns it off. ``personseg video`` and ``live`` take it too, on a crop
held steady from frame to frame and stabilised on its own (:mod:`personseg.video.second_look`).

The fast tier can spend its two network calls differently (``first_size``, :class:`ZoomSettings`): the whole photo
at a smaller input only to find the people, then the square crop around them at the model's own input, which
replaces the first pass there. A person in a 16:9 frame then reaches a 192 network at up to twice the pixels for
about 1.5 network calls' time (``scripts/set_inference.py --two-stages``). Video keeps one pass per frame for such
a model (the stabiliser and the frame rate want the whole frame at one size).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from personseg.inference.compose import person_box


@dataclass(frozen=True)
class ZoomSettings:
    """``min_gain``: run the second pass only when the crop reaches the network at least this many times larger
    than the whole photo did (a crop barely smaller than the photo would cost a network call for nothing);
    ``margin``: the box around the found people grows by this fraction of its size on each side.

    The fast tier's two stages (``first_size`` set): the whole photo goes through the network at ``first_size`` x
    ``first_size`` only to find the people (cheaper than the input size), and the crop around them always goes
    through at the input size (the whole photo when nobody is found or the crop would not be larger). ``weight``
    is the crop's share inside its box (0.5: the mean of both passes; 1: the crop replaces the first pass), fading
    to 0 across the margin; ``square`` grows the box to a square (a stretched input then sees the people undistorted);
    ``threshold`` is the probability that counts as person when finding the box (None: the model's threshold).

    ``crop_size``: the crop goes through the network at a shape of its own within ``crop_size`` x ``crop_size``
    pixels (resize "fit", :func:`personseg.inference.api.fit_shape`) instead of the model's input: a tall crop
    around a standing person then costs a fraction of a square pass (session 18, an option: v8's 384 square whole
    photo and a crop within 256x256 took 18.1 ms for both passes where two 384 squares took 23.5)."""

    min_gain: float = 1.15
    margin: float = 0.1
    first_size: int | None = None
    weight: float = 0.5
    square: bool = False
    threshold: float | None = None
    crop_size: int | None = None


_KEYS = ("min_gain", "margin", "first_size", "weight", "square", "threshold", "crop_size")


def zoom_settings(meta: Mapping[str, Any], source: str) -> ZoomSettings | None:
    """The ``zoom`` entry of a model's metadata, checked (one-line error naming ``source``); None when absent."""
    raw = meta.get("zoom")
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - set(_KEYS):
        raise ValueError(f"{source}: metadata zoom must be an object with keys from {', '.join(_KEYS)}, got {raw!r}")
    settings = ZoomSettings(**raw)
    gain, margin, weight = settings.min_gain, settings.margin, settings.weight

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    if not all(number(v) for v in (gain, margin, weight)):
        raise ValueError(f"{source}: metadata zoom min_gain, margin and weight must be numbers, got {raw!r}")
    if not (1.0 <= gain <= 100.0 and 0.0 <= margin <= 1.0 and 0.0 < weight <= 1.0):
        raise ValueError(
            f"{source}: metadata zoom needs min_gain in [1, 100], margin in [0, 1] and weight in (0, 1], got {raw!r}"
        )
    first = settings.first_size
    if first is not None and (isinstance(first, bool) or not isinstance(first, int) or not 16 <= first <= 4096):
        raise ValueError(
            f"{source}: metadata zoom first_size must be a whole number of pixels in 16..4096, got {raw!r}"
        )
    crop = settings.crop_size
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or not 32 <= crop <= 4096):
        raise ValueError(f"{source}: metadata zoom crop_size must be a whole number of pixels in 32..4096, got {raw!r}")
    if not isinstance(settings.square, bool):
        raise ValueError(f"{source}: metadata zoom square must be true or false, got {raw!r}")
    if settings.threshold is not None and not (number(settings.threshold) and 0 < settings.threshold < 1):
        raise ValueError(f"{source}: metadata zoom threshold must be a number in (0, 1), got {raw!r}")
    return settings


def zoom_box(
    low: np.ndarray,
    image_hw: tuple[int, int],
    scale: Callable[[int, int], tuple[float, float]],
    threshold: float,
    settings: ZoomSettings,
    crop_scale: Callable[[int, int], tuple[float, float]] | None = None,
) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) in the photo of the people found in ``low`` (the first pass's probability at
    network resolution, covering the whole photo), grown by the margin; None when nobody was found or when the
    crop would not reach the network at least ``min_gain`` times larger than the photo did. ``threshold`` (the
    model's) counts as person unless the settings give their own; ``settings.square`` grows the box to a square.

    ``scale(h, w)`` is the (vertical, horizontal) factor by which the network's input shrinks an h x w picture;
    ``crop_scale`` the same for the crop when it goes through the network otherwise (``crop_size``).
    """
    box = person_box(low, threshold if settings.threshold is None else settings.threshold, settings.margin)
    if box is None:
        return None
    height, width = image_hw
    fy, fx = height / low.shape[0], width / low.shape[1]
    top, bottom, left, right = box
    top, left = max(0, int(top * fy)), max(0, int(left * fx))
    bottom, right = min(height, int(np.ceil(bottom * fy))), min(width, int(np.ceil(right * fx)))
    if bottom <= top or right <= left:
        return None
    if settings.square:
        side = max(bottom - top, right - left)
        top, bottom = _widen(top, bottom, side, height)
        left, right = _widen(left, right, side, width)
    whole, crop = scale(height, width), (crop_scale or scale)(bottom - top, right - left)
    if min(crop[0] / whole[0], crop[1] / whole[1]) < settings.min_gain:
        return None
    return top, bottom, left, right


def _widen(start: int, end: int, size: int, limit: int) -> tuple[int, int]:
    """[start, end) grown to ``size`` about its centre, within [0, limit)."""
    size = min(size, limit)
    begin = int(np.clip(round((start + end - size) / 2), 0, limit - size))
    return begin, begin + size


def merge(
    first: np.ndarray, second: np.ndarray, box: tuple[int, int, int, int], margin: float, weight: float = 0.5
) -> np.ndarray:
    """``first`` (the whole photo's probability) with ``second`` (the crop's) mixed in inside ``box``, ``weight``
    of it (0.5: the mean of both passes).

    The second pass's weight fades from ``weight`` to 0 across the box's margin (``margin`` of the people's size on
    each side, where the crop sees mostly background), so nothing it alone sees ends at a hard rectangle: without the
    fade a swing's pole in front of the person, taken as person by the crop, showed as a half-transparent band cut
    off at the box's edges. Sides on the photo's own edge do not fade.
    """
    top, bottom, left, right = box
    height, width = first.shape
    inner = 1.0 + 2.0 * margin

    def ramp(n: int, fade_start: bool, fade_end: bool) -> np.ndarray:
        band = max(1.0, n * margin / inner)
        pos = np.arange(n, dtype=np.float32) + 0.5
        up = np.clip(pos / band, 0.0, 1.0) if fade_start else np.ones(n, np.float32)
        down = np.clip((n - pos) / band, 0.0, 1.0) if fade_end else np.ones(n, np.float32)
        return np.minimum(up, down)

    rows = ramp(bottom - top, top > 0, bottom < height)
    cols = ramp(right - left, left > 0, right < width)
    share = weight * np.minimum(rows[:, None], cols[None, :])
    out = first.copy()
    region = out[top:bottom, left:right]
    out[top:bottom, left:right] = region + share * (second - region)
    return out
