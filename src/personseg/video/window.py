"""Non-causal temporal smoothing for video files: each frame's probability averaged with its neighbours'.

A causal smoother (:mod:`personseg.video.stabilize`) can only look back, so it must choose between lag on
moving edges and flicker on still ones. A video file has the future too: :class:`FlowWindow` averages each
frame's full-resolution probability with those of up to ``radius`` frames before *and after* it, each first
moved onto the frame along dense optical flow (OpenCV's DIS on frames downscaled to ``flow_size``, solved down
to that size's own pixels), so a moving edge is averaged with itself rather than dragged, and errors that come
and go from frame to frame (a limb missed once, an edge placed a few pixels off) are outvoted by the frames
around them. Each neighbour is weighted by its distance in time (Gaussian, sigma ``0.75 * radius``) and, per
pixel, by how well the flow explains the frame: where the warped neighbour's colours differ from the frame's
(occlusion, a flow failure, something that came into view) it counts less, down to nothing.

Frames come out ``radius`` frames late, in order; :meth:`FlowWindow.flush` gives the rest at the end of the
clip. A scene cut (``cut=True`` on the first frame after it) closes the window: frames are never averaged
across a cut. Measured on the held-out davis_people sequences (docs/video.md), the flow stabiliser, this window
and the video's tighter edge together took ``personseg video``'s temporal error to about 61% of frame by
frame's and its flicker to under half (session 40); with the file's closer second look
(:func:`personseg.video.second_look.file_look`) 58% (session 41).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

#: frames on each side of the one being smoothed (``personseg video --window``)
DEFAULT_RADIUS = 6

#: the longer side of the frames the optical flow is computed on
FLOW_SIZE = 640


@dataclass
class _Frame:
    number: int
    tag: Any
    prob: np.ndarray  # float32, full resolution
    work: np.ndarray  # float32 at the working size
    small: np.ndarray  # float32 RGB at the flow's size, for the photometric gate
    gray: np.ndarray  # uint8 at the flow's size, for the flow


def _fit(h: int, w: int, side: int) -> tuple[int, int]:
    """(width, height) of ``h x w`` shrunk to at most ``side`` on its longer side (never enlarged)."""
    scale = side / max(h, w)
    return (max(1, round(w * scale)), max(1, round(h * scale))) if scale < 1 else (w, h)


class FlowWindow:
    """Average each frame's probability with its flow-aligned neighbours (see the module's docstring).

    ``push(tag, rgb, prob)`` returns the frames now complete as ``(tag, smoothed probability)``, in order;
    ``tag`` is anything the caller needs back with its frame. ``gate``: the mean colour error after warping
    (0-1, 3x3 box) at which a neighbour's weight starts to fall and where it reaches 0. The average is taken at
    most ``work_size`` px a side and added to the frame's own full-resolution probability as a correction
    (``prob + upsampled(average - own)``), so its full-resolution detail stays where the neighbours agree and
    a 720p frame costs a quarter of the full-resolution arithmetic. ``preset``, ``finest_scale`` (0: down to the
    flow frame's pixels) and ``refinement`` (variational refinement iterations) set OpenCV's DIS flow.
    """

    def __init__(
        self,
        radius: int = DEFAULT_RADIUS,
        flow_size: int = FLOW_SIZE,
        gate: tuple[float, float] = (0.04, 0.12),
        preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        work_size: int = 640,
        finest_scale: int = 0,
        refinement: int = 0,
    ) -> None:
        if radius < 1:
            raise ValueError(f"the window needs at least one frame on each side, got radius {radius}")
        if not 0.0 <= gate[0] < gate[1]:
            raise ValueError(f"need 0 <= gate low < gate high, got {gate}")
        self.radius = int(radius)
        self.flow_size = int(flow_size)
        self.work_size = int(work_size)
        self.gate = (float(gate[0]), float(gate[1]))
        self.sigma = 0.75 * self.radius
        self._dis = cv2.DISOpticalFlow_create(preset)
        # Down to the flow frame's own pixels (the preset stops a scale above: half the resolution) and without
        # the variational refinement, which costs about a third of the flow's time and does not help the average
        # (session 40, docs/video.md, held-out davis_people temporal error: 1.23 -> 1.19 solving to the pixel at
        # radius 4; 1.177 -> 1.172 without the refinement at radius 6).
        self._dis.setFinestScale(int(finest_scale))
        self._dis.setVariationalRefinementIterations(int(refinement))
        self._frames: deque[_Frame] = deque()
        self._next = 0  # number of the next frame to come out
        self._count = 0
        self._grid: np.ndarray | None = None
        self._flows: dict[tuple[int, int], np.ndarray] = {}

    def push(self, tag: Any, rgb: np.ndarray, prob: np.ndarray, cut: bool = False) -> list[tuple[Any, np.ndarray]]:
        """Add the next frame (RGB uint8 and its HxW probability in [0, 1]); ``cut``: it starts a new shot."""
        out = self.flush() if cut or (self._frames and self._frames[-1].prob.shape != prob.shape) else []
        h, w = prob.shape
        prob = prob.astype(np.float32, copy=False)
        size = _fit(h, w, self.work_size)
        work = cv2.resize(prob, size, interpolation=cv2.INTER_AREA) if size != (w, h) else prob
        size = _fit(h, w, self.flow_size)
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if size != (w, h) else rgb
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        self._frames.append(_Frame(self._count, tag, prob, work, small.astype(np.float32) / 255.0, gray))
        self._count += 1
        while self._frames[-1].number - self._next >= self.radius:
            out.append(self._emit())
        return out

    def flush(self) -> list[tuple[Any, np.ndarray]]:
        """The frames still waiting for their future (the end of a clip or a shot), smoothed with what there is."""
        out = []
        while self._frames and self._next <= self._frames[-1].number:
            out.append(self._emit())
        self._frames.clear()
        self._flows.clear()
        self._next = self._count
        return out

    def _frame(self, number: int) -> _Frame | None:
        """The held frame of that number (the deque holds consecutive numbers), or None."""
        index = number - self._frames[0].number if self._frames else -1
        return self._frames[index] if 0 <= index < len(self._frames) else None

    def _emit(self) -> tuple[Any, np.ndarray]:
        centre = self._frame(self._next)
        num = centre.work.copy()
        den = np.ones(num.shape, np.float32)
        for k in range(-self.radius, self.radius + 1):
            other = self._frame(self._next + k)
            if k == 0 or other is None:
                continue
            warped, weight = self._align(centre, other)
            weight *= float(np.exp(-0.5 * (k / self.sigma) ** 2))
            num += weight * warped
            den += weight
        self._next += 1
        while self._frames and self._frames[0].number < self._next - self.radius:
            self._frames.popleft()
        oldest = self._frames[0].number if self._frames else self._next
        self._flows = {k: v for k, v in self._flows.items() if min(k) >= oldest}
        correction = np.divide(num, den, out=num)
        correction -= centre.work
        h, w = centre.prob.shape
        if correction.shape != (h, w):
            correction = cv2.resize(correction, (w, h), interpolation=cv2.INTER_LINEAR)
        correction += centre.prob
        return centre.tag, np.clip(correction, 0.0, 1.0, out=correction)

    def _grid_for(self, sh: int, sw: int) -> np.ndarray:
        if self._grid is None or self._grid.shape[:2] != (sh, sw):
            self._grid = np.dstack(np.indices((sh, sw), dtype=np.float32)[::-1])  # (x, y) of each small pixel
        return self._grid

    def _flow(self, a: int, b: int) -> np.ndarray:
        """Where each (flow-size) pixel of frame ``a`` is in frame ``b``, as an offset. Only neighbouring frames
        get a DIS flow of their own (two per frame: forward and back); farther ones chain them, half the cost of
        a flow per pair at the same scores on davis_people."""
        if (a, b) not in self._flows:
            if abs(a - b) == 1:
                self._flows[a, b] = self._dis.calc(self._frame(a).gray, self._frame(b).gray, None)
            else:
                step = a + (1 if b > a else -1)
                first = self._flow(a, step)
                sh, sw = first.shape[:2]
                rest = cv2.remap(
                    self._flow(step, b),
                    self._grid_for(sh, sw) + first,
                    None,
                    cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE,
                )
                self._flows[a, b] = first + rest
        return self._flows[a, b]

    def _align(self, centre: _Frame, other: _Frame) -> tuple[np.ndarray, np.ndarray]:
        """``other``'s working-size probability moved onto ``centre`` and its per-pixel weight in [0, 1]."""
        sh, sw = centre.gray.shape
        where = self._grid_for(sh, sw) + self._flow(centre.number, other.number)
        warped_small = cv2.remap(other.small, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        diff = cv2.absdiff(centre.small, warped_small)
        error = cv2.blur(np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2]), (3, 3))
        low, high = self.gate
        weight = 1.0 - np.clip((error - low) * (1.0 / (high - low)), 0.0, 1.0)
        outside = (where[..., 0] < 0) | (where[..., 0] > sw - 1) | (where[..., 1] < 0) | (where[..., 1] > sh - 1)
        weight[outside] = 0.0  # not in view there
        h, w = centre.work.shape
        if (h, w) != (sh, sw):
            # Working-size sampling positions straight from the small ones: with pixel centres at +0.5,
            # upsampling x_small -> (x_small + 0.5) * w / sw - 0.5 is exactly grid + scaled flow.
            where = (where + 0.5) * np.array([w / sw, h / sh], np.float32) - 0.5
            where = cv2.resize(where, (w, h), interpolation=cv2.INTER_LINEAR)
            weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)
        warped = cv2.remap(other.work, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return warped, weight
