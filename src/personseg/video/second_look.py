"""The photo path's second look at the people (:mod:`personseg.inference.zoom`), made steady for video.

A photo's crop box comes from its own first pass; in a video that box would jump with every frame's mask, and the
crop's probability would flicker with it. :class:`SecondLook` keeps one box for a shot: its size is held while the
people found still fit in it and fill at least half of it, and it moves half way towards them each frame, so
consecutive crops show the same part of the scene and their probabilities can be stabilised like the whole
frame's (a second stabiliser, on the crop). A new box (someone walked in, the people grew or shrank by half)
restarts that stabiliser: :meth:`SecondLook.box` says ``fresh`` and :meth:`SecondLook.stabilize` starts over (kept
apart because a batch's boxes are all chosen before its crops go through the network). When the first pass finds
nobody, the last box is still looked at for ``patience`` frames, so a person the whole frame lost for a moment (the
far end of a swing) can still be found up close.

Video files, which ``personseg video`` smooths with the non-causal window, take a closer look than photos and
``personseg live`` (:func:`file_look`): the crop within :data:`FILE_CROP_SIZE` pixels a side instead of the
model's input, weighted :data:`FILE_CROP_WEIGHT` inside its box, and taken with every model (personseg-fast's
photos have none). A file has time for it: the window costs several network passes a frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from personseg.inference.zoom import ZoomSettings, zoom_box
from personseg.video.stabilize import Stabilizer

Box = tuple[int, int, int, int]  # top, bottom, left, right

#: the longer side the crop of a video file's second look is fitted within (network pixels). On the held-out
#: davis_people sequences (session 41, ``personseg video`` with the default model) 416 px and weight 0.85 took the
#: temporal error from 1.18 to 1.07 and IoU from 0.851 to 0.870 (480 px: 1.05 / 0.870 for 1.3x the crop's pixels);
#: the fast model with this look 1.77 -> 1.24 and 0.772 -> 0.862 (docs/video.md).
FILE_CROP_SIZE = 416

#: the crop's share of the probability inside its box in a video file (photos: the model's own, also 0.85 for
#: personseg-default since session 41; models without a look of their own would get ZoomSettings' 0.5); the first
#: pass still decides who is found and everything outside the box
FILE_CROP_WEIGHT = 0.85


def file_look(settings: ZoomSettings | None) -> ZoomSettings:
    """The second look a video file takes (see the module's docstring): ``settings`` (the model's own, or the
    defaults when it has none) with the crop fitted within :data:`FILE_CROP_SIZE` and weighted
    :data:`FILE_CROP_WEIGHT`; a two-stage photo model's look-out size is dropped (a frame goes through whole)."""
    return replace(settings or ZoomSettings(), first_size=None, crop_size=FILE_CROP_SIZE, weight=FILE_CROP_WEIGHT)


def _area(box: Box) -> int:
    return (box[1] - box[0]) * (box[3] - box[2])


def _grow(box: Box, slack: float, height: int, width: int) -> Box:
    """``box`` grown by ``slack`` of its size on each side, within the frame: room for the people to move."""
    dy, dx = round(slack * (box[1] - box[0])), round(slack * (box[3] - box[2]))
    return max(0, box[0] - dy), min(height, box[1] + dy), max(0, box[2] - dx), min(width, box[3] + dx)


def _follow(box: Box, target: Box, height: int, width: int) -> Box:
    """``box``'s size moved half way towards ``target``'s centre, keeping ``target`` inside and the box in the
    frame (``target`` fits in ``box``)."""

    def axis(lo: int, hi: int, t_lo: int, t_hi: int, limit: int) -> tuple[int, int]:
        size = hi - lo
        centre = 0.5 * (lo + hi + 0.5 * ((t_lo + t_hi) - (lo + hi)))
        start = round(centre - size / 2)
        start = min(max(start, t_hi - size), t_lo)  # the target stays inside
        start = min(max(start, 0), limit - size)  # the box stays in the frame
        return start, start + size

    top, bottom = axis(box[0], box[1], target[0], target[1], height)
    left, right = axis(box[2], box[3], target[2], target[3], width)
    return top, bottom, left, right


class SecondLook:
    """Per-stream state of the video second look: the crop box (:meth:`box`) and its stabiliser
    (:meth:`stabilize`). Frames must come in order; :meth:`reset` at a scene cut."""

    def __init__(
        self, settings: ZoomSettings, stabilizer: Stabilizer | None, patience: int = 5, slack: float = 0.1
    ) -> None:
        self.settings = settings
        self.stabilizer = stabilizer
        self.patience = patience
        self.slack = slack
        self.reset()

    def reset(self) -> None:
        """Forget the box (a scene cut): the next one found is fresh."""
        self._box: Box | None = None
        self._found_area = 0  # the people's box when the current one was chosen (before the slack)
        self._missed = 0

    def box(
        self,
        low: np.ndarray,
        image_hw: tuple[int, int],
        scale: Callable[[int, int], tuple[float, float]],
        threshold: float,
        crop_scale: Callable[[int, int], tuple[float, float]] | None = None,
    ) -> tuple[Box | None, bool]:
        """(the crop to look at in this frame, in photo pixels, or None; whether it is a new box) from the
        frame's whole-frame probability ``low`` (``scale``, ``crop_scale``: as :func:`zoom_box` takes them)."""
        found = zoom_box(low, image_hw, scale, threshold, self.settings, crop_scale)
        if found is None:
            self._missed += 1
            if self._missed > self.patience:
                self._box = None
            return self._box, False
        self._missed = 0
        kept = self._box
        fresh = (
            kept is None
            or found[1] - found[0] > kept[1] - kept[0]
            or found[3] - found[2] > kept[3] - kept[2]
            or _area(found) < 0.5 * self._found_area
        )
        if fresh:
            self._box, self._found_area = _grow(found, self.slack, *image_hw), _area(found)
        else:
            self._box = _follow(kept, found, *image_hw)
        return self._box, fresh

    def stabilize(self, low: np.ndarray, guide: np.ndarray, fresh: bool) -> np.ndarray:
        """The crop's probability, stabilised against the previous frames' crops of the same box (as is without a
        stabiliser; ``fresh``: a new box, the past is dropped)."""
        if self.stabilizer is None:
            return low
        if fresh:
            self.stabilizer.reset()
        return self.stabilizer.update(low, guide)
