"""``process_video``: decode -> batched predict -> stabilise -> refine and compose -> encode.

The four stages run in their own threads joined by small bounded queues (decoding, ONNX Runtime, OpenCV and
the encoders all release the GIL), so decoding and encoding overlap with inference and memory stays at a
few frames whatever the video's length. The network sees ``batch_size`` frames per call; its low-resolution
probability is stabilised (:class:`~personseg.video.stabilize.FlowStabilizer` by default, motion-compensated)
and brought back to full resolution along the frame's own edges (guided upsampling), then post-processed
exactly like a photo; with ``subject="main"`` a :class:`~personseg.inference.subject.SubjectTracker` keeps the
same person from frame to frame, and starts afresh where the stabiliser does (a scene cut).

Errors in any stage stop the others and delete the partial output; Ctrl-C (or a ``KeyboardInterrupt`` from
any stage) finalizes the frames already encoded into a playable file, then re-raises.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from personseg.inference import compose, refine
from personseg.inference.remove import RemoveOptions, postprocess
from personseg.inference.subject import SubjectTracker
from personseg.video.reader import VideoInfo, VideoReader, iter_looped
from personseg.video.stabilize import DEFAULT_STRENGTH, STABILIZERS, FlowStabilizer, Stabilizer
from personseg.video.writer import ALPHA_KINDS, OUTPUT_KINDS, VideoWriter, check_output, kind_from_path

log = logging.getLogger(__name__)

#: the composite's background when none is chosen: chroma-key green, easy to key out again in an editor
DEFAULT_BACKGROUND = (0, 177, 64)


@dataclass
class VideoOptions:
    """How a video is processed. Exactly one ``background_*`` may be set (composite output only)."""

    output_kind: str | None = None
    """composite, webm-alpha, prores, mask or png-seq; ``None`` infers it from the output name."""
    background_color: Sequence[int] | None = None
    """R, G, B behind the person (composite; default: chroma green)."""
    background_image: str | os.PathLike | None = None
    """An image behind the person, scaled to cover the frame."""
    background_blur: float | None = None
    """Keep the scene but blur it by this many pixels (Gaussian sigma)."""
    background_video: str | os.PathLike | None = None
    """Another video behind the person, scaled to cover and looped to the input's length."""
    smooth: bool = True
    """Temporal stabilisation of the mask (see :class:`Stabilizer`)."""
    smooth_strength: float = DEFAULT_STRENGTH
    """How much the past counts in still regions, in [0, 1)."""
    stabilizer: str = STABILIZERS[0]
    """``flow`` (the past warped along optical flow first, :class:`FlowStabilizer`) or ``plain``
    (:class:`Stabilizer`)."""
    batch_size: int = 4
    """Frames per network call."""
    internal_size: int = 0
    """Downscale frames to this longest side before the network and the motion gate (0: no); the mask's
    edges are still refined against the full-resolution frame."""
    remove: RemoveOptions = field(default_factory=RemoveOptions)
    """Mask post-processing, as for photos (crop is not available for video)."""
    audio: bool = True
    """Carry the input's audio over (copied when the container allows, else re-encoded)."""
    quality: int | None = None
    """Encoder CRF (H.264 default 18, VP9 default 30); lower is better and larger."""
    sequence_fps: float = 25.0
    """Frame rate of an image-sequence input."""
    max_frames: int = 0
    """Stop after this many frames (0: all)."""
    queue_size: int = 8
    """Frames buffered between two stages."""

    def __post_init__(self) -> None:
        if self.output_kind is not None and self.output_kind not in OUTPUT_KINDS:
            raise ValueError(f"output_kind {self.output_kind!r}: choose from {', '.join(OUTPUT_KINDS)}")
        chosen = [
            n
            for n in ("background_color", "background_image", "background_blur", "background_video")
            if getattr(self, n) is not None
        ]
        if len(chosen) > 1:
            raise ValueError(f"give at most one background, got {', '.join(chosen)}")
        if self.background_blur is not None and self.background_blur <= 0:
            raise ValueError(f"background_blur must be > 0 pixels, got {self.background_blur}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.internal_size < 0:
            raise ValueError(f"internal_size must be >= 0 (0: full size), got {self.internal_size}")
        if not 0.0 <= self.smooth_strength < 1.0:
            raise ValueError(f"smooth_strength must be in [0, 1), got {self.smooth_strength}")
        if self.stabilizer not in STABILIZERS:
            raise ValueError(f"stabilizer {self.stabilizer!r}: choose from {', '.join(STABILIZERS)}")
        if self.max_frames < 0:
            raise ValueError(f"max_frames must be >= 0 (0: all), got {self.max_frames}")
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {self.queue_size}")

    @property
    def has_background(self) -> bool:
        return any(
            x is not None
            for x in (self.background_color, self.background_image, self.background_blur, self.background_video)
        )


@dataclass
class VideoResult:
    """What :func:`process_video` did."""

    output: Path | None
    frames: int
    seconds: float
    info: VideoInfo
    kind: str

    @property
    def fps(self) -> float:
        """Processing speed, frames per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Failure:
    """An exception travelling down the queues to the main thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


def process_video(
    source: str | os.PathLike,
    output: str | os.PathLike,
    model: Any = None,
    options: VideoOptions | None = None,
    progress: Callable[[int, VideoInfo], None] | None = None,
) -> VideoResult:
    """Segment every frame of ``source`` and write ``output`` (see :class:`VideoOptions`).

    ``source``: a video file, or an image sequence as a glob (``frames/*.png``) or printf pattern
    (``frames/%04d.png``). ``model``: a loaded model (anything with ``predict_lowres`` and ``threshold``), a
    shipped name or a path (default: the shipped default). ``progress(frames_written, info)`` is called after
    every frame (``info.frame_count`` is the expected total, 0 if unknown). Raises :class:`VideoError` (a
    ``ValueError``) naming the file when a video cannot be read or written; no output is left behind then.
    """
    options = options or VideoOptions()
    kind = options.output_kind or kind_from_path(output)
    check_output(output, kind)
    if options.remove.crop:
        raise ValueError("crop is not available for video (the frame size must stay the same)")
    if kind != "composite" and options.has_background:
        log.warning("a background only applies to composite output; %s output ignores it", kind)
    if not hasattr(model, "predict_lowres"):
        from personseg.inference.api import load_model

        model = load_model(model)
    background = Background(options, kind)
    start = time.perf_counter()
    reader = VideoReader(source, sequence_fps=options.sequence_fps, max_frames=options.max_frames)
    try:
        info = reader.info
        background.prepare(info.height, info.width)
        audio = source if options.audio and info.has_audio else None
        writer = VideoWriter(
            output, kind, info.width, info.height, info.fps, info.time_base, audio_from=audio, quality=options.quality
        )
        written = _run(reader, writer, model, options, kind, background, progress)
    finally:
        reader.close()
        background.close()
    expected = min(info.frame_count, options.max_frames or info.frame_count)
    if expected and writer.frames < expected - 1 and not info.is_sequence:
        log.warning("%s: decoded %d of ~%d frames; is the file truncated?", source, writer.frames, expected)
    return VideoResult(written, writer.frames, time.perf_counter() - start, info, kind)


def _run(reader, writer, model, options, kind, background, progress) -> Path | None:
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(options.queue_size)
    predicted: queue.Queue = queue.Queue(options.queue_size)
    rendered: queue.Queue = queue.Queue(options.queue_size)
    threshold = options.remove.threshold_for(model)
    stabilizer = make_stabilizer(options)
    subject = make_subject_tracker(options, threshold)

    def render(frame, low, restarted) -> np.ndarray:
        return finish_frame(frame.rgb, low, options, threshold, kind, background, subject, restarted)

    threads = [
        threading.Thread(target=_decode_stage, args=(reader, decoded, stop), name="video-decode", daemon=True),
        threading.Thread(
            target=_predict_stage,
            args=(model, stabilizer, options, decoded, predicted, stop),
            name="video-predict",
            daemon=True,
        ),
        threading.Thread(target=_map_stage, args=(render, predicted, rendered, stop), name="video-render", daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        while True:
            item = _get(rendered, stop)
            if item is _END:
                break
            if isinstance(item, _Failure):
                raise item.exc
            image, pts = item
            writer.write(image, pts)
            if progress is not None:
                progress(writer.frames, reader.info)
    except KeyboardInterrupt:
        _stop(stop, threads, (decoded, predicted, rendered))
        log.warning("interrupted after %d frames", writer.frames)
        writer.close(partial=True)
        raise
    except BaseException:
        _stop(stop, threads, (decoded, predicted, rendered))
        writer.abort()
        raise
    _stop(stop, threads, (decoded, predicted, rendered))
    return writer.close()


def _stop(stop: threading.Event, threads: list[threading.Thread], queues: Sequence[queue.Queue]) -> None:
    stop.set()
    for q in queues:  # unblock producers waiting on a full queue
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                break
    for t in threads:
        t.join(timeout=10)


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


def _decode_stage(reader: VideoReader, out: queue.Queue, stop: threading.Event) -> None:
    try:
        for frame in reader:
            if not _put(out, frame, stop):
                return
        _put(out, _END, stop)
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        _put(out, _Failure(exc), stop)


def _predict_stage(model, stabilizer, options: VideoOptions, inp: queue.Queue, out: queue.Queue, stop) -> None:
    try:
        done = False
        while not done and not stop.is_set():
            batch = []
            while len(batch) < options.batch_size:
                item = _get(inp, stop)
                if item is _END or isinstance(item, _Failure):
                    done = True
                    break
                batch.append(item)
            if batch:
                small = [_downscale(f.rgb, options.internal_size) for f in batch]
                lows = model.predict_lowres(small)
                for frame, low, guide in zip(batch, lows, small, strict=True):
                    low, restarted = stabilize(stabilizer, low, guide)
                    if not _put(out, (frame, low, restarted), stop):
                        return
            if done:
                _put(out, item, stop)
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        _put(out, _Failure(exc), stop)


def _map_stage(fn: Callable, inp: queue.Queue, out: queue.Queue, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            item = _get(inp, stop)
            if item is _END or isinstance(item, _Failure):
                _put(out, item, stop)
                return
            frame, low, restarted = item
            if not _put(out, (fn(frame, low, restarted), frame.pts), stop):
                return
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        _put(out, _Failure(exc), stop)


def _downscale(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def make_stabilizer(options: VideoOptions) -> Stabilizer | None:
    """The stabiliser ``options`` ask for (``flow`` or ``plain``), or ``None`` when smoothing is off."""
    if not options.smooth or options.smooth_strength <= 0:
        return None
    cls = FlowStabilizer if options.stabilizer == "flow" else Stabilizer
    return cls(options.smooth_strength)


def make_subject_tracker(options: VideoOptions, threshold: float) -> SubjectTracker | None:
    """One video's main-subject tracker (``options.remove.subject == "main"``), else ``None``."""
    return SubjectTracker(threshold) if options.remove.subject == "main" else None


def stabilize(stabilizer: Stabilizer | None, low: np.ndarray, guide: np.ndarray) -> tuple[np.ndarray, bool]:
    """(the stabilised probability, whether the stabiliser started afresh: a scene cut or the first frame)."""
    if stabilizer is None:
        return low, False
    low = stabilizer.update(low, guide)
    return low, stabilizer.restarted


def finish_frame(
    rgb: np.ndarray,
    low: np.ndarray,
    options: VideoOptions,
    threshold: float,
    kind: str,
    background: Background,
    subject: SubjectTracker | None = None,
    restarted: bool = False,
) -> np.ndarray:
    """A frame's (stabilised) low-resolution probability -> the output frame: guided upsampling to the frame's
    size, the mask post-processing (the main subject first, by ``subject``, which forgets its choice when the
    stabiliser ``restarted``), then :func:`render_frame`. Shared by ``personseg video`` and ``live``; call it
    on the frames in order."""
    if subject is not None and restarted:
        subject.reset()
    alpha = postprocess(rgb, refine.guided_upsample(low, rgb), options.remove, threshold, subject)
    return render_frame(rgb, alpha, kind, options.remove.foreground, background)


def render_frame(rgb: np.ndarray, alpha: np.ndarray, kind: str, foreground: str, background: Background) -> np.ndarray:
    """The output frame of ``kind``: grey mask, RGBA cut-out, or RGB composite."""
    if kind == "mask":
        return compose.alpha_to_uint8(alpha)
    fg = refine.estimate_foreground(rgb, alpha, foreground)
    if kind in ALPHA_KINDS:
        return compose.cutout(fg, alpha)
    bg = background.next(rgb, alpha)
    alpha = np.ascontiguousarray(alpha, np.float32)
    # Same as compose.over for an RGB background (within 1 level of rounding), ~5x faster on a 720p frame.
    return cv2.blendLinear(fg, np.ascontiguousarray(bg), alpha, 1.0 - alpha)


class Background:
    """What goes behind the person in a composite: colour, image, blurred scene or a looped video.

    Shared with ``personseg live``; :meth:`next` gives the background for one frame.
    """

    def __init__(self, options: VideoOptions, kind: str) -> None:
        self.options = options
        self.active = kind == "composite"
        self._still: np.ndarray | None = None
        self._frames: Iterator[np.ndarray] | None = None

    def prepare(self, h: int, w: int) -> None:
        """Load the background for frames of ``h x w`` (errors here come before any output exists)."""
        if not self.active:
            return
        o = self.options
        if o.background_image is not None:
            from personseg.inference.io import read_image

            self._still = np.ascontiguousarray(compose.cover(read_image(o.background_image).rgb, h, w))
        elif o.background_video is not None:
            self._frames = iter_looped(o.background_video, w, h)
            self._still = None
            first = next(self._frames)  # opens it now, so a bad file fails early
            self._first = first
        elif o.background_blur is None:
            color = tuple(o.background_color) if o.background_color is not None else DEFAULT_BACKGROUND
            if len(color) == 4:
                log.warning("composite video has no transparency: the colour's alpha %d is ignored", color[3])
            self._still = np.ascontiguousarray(compose.color_background(h, w, color[:3]))

    def next(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """The RGB background (frame-sized) to put behind this frame's person."""
        if self._still is not None:
            return self._still
        if self._frames is not None:
            first, self._first = getattr(self, "_first", None), None
            return first if first is not None else next(self._frames)
        return compose.blurred_background(rgb, alpha, float(self.options.background_blur))

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()
            self._frames = None
