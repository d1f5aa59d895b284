"""``process_video``: decode -> batched predict -> stabilise -> refine and compose -> encode.

The four stages run in their own threads joined by small bounded queues (decoding, ONNX Runtime, OpenCV and
the encoders all release the GIL), so decoding and encoding overlap with inference and memory stays at a
few frames whatever the video's length. The network sees ``batch_size`` frames per call; its low-resolution
probability is stabilised (:class:`~personseg.video.stabilize.FlowStabilizer` by default, motion-compensated)
and brought back to full resolution along the frame's own edges (guided upsampling), averaged with its
neighbours' along the optical flow (:class:`~personseg.video.window.FlowWindow`, ``window`` frames each side: the
frames come out that late), then post-processed like a photo with a tighter edge (:data:`VIDEO_EDGE_CUTOFF`);
with ``subject="main"`` a :class:`~personseg.inference.subject.SubjectTracker` keeps the same person from frame
to frame, and starts afresh where the stabiliser does (a scene cut).

Errors in any stage stop the others and delete the partial output; Ctrl-C (or a ``KeyboardInterrupt`` from
any stage) finalizes the frames already encoded into a playable file, then re-raises.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from personseg.inference import compose, refine
from personseg.inference.options import Background, OptionError, RemoveOptions, check_options, option
from personseg.inference.remove import postprocess
from personseg.inference.subject import SubjectTracker
from personseg.inference.zoom import merge
from personseg.video.reader import VideoInfo, VideoReader, iter_looped
from personseg.video.second_look import SecondLook, file_look
from personseg.video.stabilize import DEFAULT_STRENGTH, STABILIZERS, FlowStabilizer, Stabilizer
from personseg.video.window import DEFAULT_RADIUS, FlowWindow
from personseg.video.writer import ALPHA_KINDS, OUTPUT_KINDS, VideoWriter, check_output, kind_from_path

log = logging.getLogger(__name__)

#: the soft edge a video's alpha keeps: ``RemoveOptions.edge_cutoff`` for video and live (photos: 0.1). A soft
#: band ~10 px wide moves with the person and changes pixels the person never entered or left (a true edge blurred
#: by 5 px scores 86% of the per-frame model's temporal error on davis_people); 0.45 keeps a 1-2 px anti-aliased
#: edge and clears the fog around legs and clothes, with the same IoU (0.4 until session 40: 0.005 more temporal
#: error behind the finer window; 0.49, nearly hard, 0.006 less).
VIDEO_EDGE_CUTOFF = 0.45

#: the composite's background when none is chosen: chroma-key green, easy to key out again in an editor
DEFAULT_BACKGROUND = (0, 177, 64)


@dataclass
class VideoOptions:
    """How a video is processed. The spec'd fields are ``personseg video``'s flags (``live`` takes the
    smoothing ones); the background and the mask post-processing are the photo options."""

    output_kind: str | None = option(
        None,
        "composite (H.264 over a background), webm-alpha (VP9 with alpha), prores (ProRes 4444 with alpha, .mov), "
        "mask (grey H.264), png-seq (RGBA PNGs in a folder); default: from OUT's extension",
        choices=OUTPUT_KINDS,
    )
    smooth: bool = option(True, "no temporal smoothing (each frame on its own)", flag="--no-smooth", invert=True)
    smooth_strength: float = option(
        DEFAULT_STRENGTH,
        "how much still parts of the mask follow the previous frames, in [0, 1); moving parts always follow the "
        "current frame; 0 is --no-smooth",
        flag="--smooth",
        ge=0.0,
        lt=1.0,
        metavar="STRENGTH",
    )
    stabilizer: str = option(
        STABILIZERS[0],
        "flow: the previous mask is first moved along the optical flow, so a panning camera or a moving person "
        "neither lags nor flickers (under 1 ms more per frame); plain: blend in place where the frame did not change",
        choices=STABILIZERS,
    )
    window: int = option(
        DEFAULT_RADIUS,
        "also average each frame's mask with those of N frames before and after it, moved along the optical "
        "flow, and look at the people a second time closer, with any model (video files only: live cannot see the "
        "future; on 2 cores the slowest steps); 0: neither, 3-5x faster",
        ge=0,
        le=8,
        metavar="N",
    )
    batch_size: int = option(4, "frames per network call", flag="--batch", ge=1, le=256, metavar="N")
    internal_size: int = option(
        0,
        "downscale frames to this longest side before the network and the motion gate (edges are still refined "
        "at full resolution); 0: no",
        ge=0,
        metavar="PX",
    )
    background: Background = field(default_factory=Background)
    """What goes behind the person in a composite (default: chroma green)."""
    remove: RemoveOptions = field(default_factory=lambda: RemoveOptions(edge_cutoff=VIDEO_EDGE_CUTOFF))
    """Mask post-processing, as for photos (crop is not available for video), but with a tighter edge cutoff
    (:data:`VIDEO_EDGE_CUTOFF`)."""
    audio: bool = option(True, "do not carry the input's audio over", flag="--no-audio", invert=True)
    quality: int | None = option(
        None, "encoder CRF, lower is better and larger (H.264 default 18, VP9 30)", ge=0, le=63, metavar="CRF"
    )
    sequence_fps: float = option(25.0, "frame rate of an image-sequence input", flag="--fps", gt=0.0, le=1000.0)
    max_frames: int = option(0, "stop after N frames (0: all)", ge=0, metavar="N")
    queue_size: int = option(8, "frames buffered between two stages", flag=None, ge=1)
    # The earlier spelling of the background, one keyword per kind: still accepted, with a DeprecationWarning.
    background_color: InitVar[Sequence[int] | str | None] = None
    background_image: InitVar[str | os.PathLike | None] = None
    background_blur: InitVar[float | None] = None
    background_video: InitVar[str | os.PathLike | None] = None

    def __post_init__(self, background_color, background_image, background_blur, background_video) -> None:
        old = {"color": background_color, "image": background_image, "blur": background_blur}
        old["video"] = background_video
        old = {k: v for k, v in old.items() if v is not None}
        if old:
            warnings.warn(
                "VideoOptions(background_<kind>=...) is deprecated: use background=Background(<kind>=...)",
                DeprecationWarning,
                stacklevel=3,
            )
            if self.background.kind is not None:
                raise ValueError("give background=Background(...) or the older background_<kind>=..., not both")
            names = {k: f"background_{k}" for k in old}
            try:
                self.background = Background(**old)
            except OptionError as exc:
                raise ValueError(exc.named(names)) from None
        check_options(self)

    @property
    def has_background(self) -> bool:
        return self.background.kind is not None


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
    processor = FrameProcessor(model, options, kind, file=True)
    start = time.perf_counter()
    reader = VideoReader(source, sequence_fps=options.sequence_fps, max_frames=options.max_frames)
    try:
        info = reader.info
        processor.prepare(info.height, info.width)
        audio = source if options.audio and info.has_audio else None
        writer = VideoWriter(
            output, kind, info.width, info.height, info.fps, info.time_base, audio_from=audio, quality=options.quality
        )
        written = _run(reader, writer, processor, progress)
    finally:
        reader.close()
        processor.close()
    expected = min(info.frame_count, options.max_frames or info.frame_count)
    if expected and writer.frames < expected - 1 and not info.is_sequence:
        log.warning("%s: decoded %d of ~%d frames; is the file truncated?", source, writer.frames, expected)
    return VideoResult(written, writer.frames, time.perf_counter() - start, info, kind)


def _run(reader, writer, processor: FrameProcessor, progress) -> Path | None:
    stop = threading.Event()
    size = processor.options.queue_size
    decoded: queue.Queue = queue.Queue(size)
    predicted: queue.Queue = queue.Queue(size)
    rendered: queue.Queue = queue.Queue(size)

    threads = [
        threading.Thread(target=_decode_stage, args=(reader, decoded, stop), name="video-decode", daemon=True),
        threading.Thread(
            target=_predict_stage, args=(processor, decoded, predicted, stop), name="video-predict", daemon=True
        ),
        threading.Thread(
            target=_render_stage, args=(processor, predicted, rendered, stop), name="video-render", daemon=True
        ),
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


def _predict_stage(processor: FrameProcessor, inp: queue.Queue, out: queue.Queue, stop) -> None:
    try:
        done = False
        while not done and not stop.is_set():
            batch = []
            while len(batch) < processor.options.batch_size:
                item = _get(inp, stop)
                if item is _END or isinstance(item, _Failure):
                    done = True
                    break
                batch.append(item)
            if batch:
                for frame, predicted in zip(batch, processor.predict([f.rgb for f in batch]), strict=True):
                    if not _put(out, (frame, *predicted), stop):
                        return
            if done:
                _put(out, item, stop)
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        _put(out, _Failure(exc), stop)


def _render_stage(processor: FrameProcessor, inp: queue.Queue, out: queue.Queue, stop: threading.Event) -> None:
    """Predicted frames in, output images out (``radius`` frames late when the processor has a window)."""
    try:
        while not stop.is_set():
            item = _get(inp, stop)
            if item is _END or isinstance(item, _Failure):
                ready = processor.flush() if item is _END else []
                for frame, image in ready:
                    if not _put(out, (image, frame.pts), stop):
                        return
                _put(out, item, stop)
                return
            frame, *predicted = item
            for done, image in processor.push(frame, frame.rgb, *predicted):
                if not _put(out, (image, done.pts), stop):
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


class FrameProcessor:
    """One stream's per-frame steps: predict -> stabilise -> finish (guided upsampling, the photo
    post-processing, compose). ``personseg live`` calls it on one frame at a time; :func:`process_video` runs
    :meth:`predict` and :meth:`finish` in their own threads. Frames must come in order: the stabiliser and the
    main-subject tracker remember the past (both start afresh at a scene cut). ``file``: the frames come from a
    video file (:func:`process_video`): with the window on, the second look looks closer
    (:func:`personseg.video.second_look.file_look`)."""

    def __init__(self, model: Any, options: VideoOptions, kind: str = "composite", file: bool = False) -> None:
        self.model = model
        self.options = options
        self.kind = kind
        self.threshold = options.remove.threshold_for(model)
        self.radius = getattr(model, "guided_radius", None)  # the guided filter's, as the model's metadata says
        self.stabilizer = make_stabilizer(options)
        # The non-causal window (push / flush only: a file's frames, never live ones), built by the first push so
        # that `personseg live`, which only calls finish, holds no optical-flow state it never uses.
        self._window_radius = options.window if self.stabilizer is not None else 0
        self.window: FlowWindow | None = None
        self.subject = SubjectTracker(self.threshold) if options.remove.subject == "main" else None
        self.background = FrameBackground(options, kind)
        self._previous: np.ndarray | None = None  # the last frame's probability: a temporal model's prior
        zoom = None
        if options.remove.zoom:
            zoom = getattr(model, "zoom", None)
            if file and self._window_radius and hasattr(model, "crop_view"):
                zoom = file_look(zoom)  # a file smoothed by the window looks closer, with every model
        # The second look at the people, when the model asks for it (not for a temporal model: its prior is the
        # whole frame's): a second network pass per frame on a steady crop, with its own stabiliser. The fast
        # tier's two stages (zoom.first_size) are for photos: a live frame goes through it once, whole, at its
        # input size, which is what keeps `personseg live` at 30 fps on 720p.
        self.second_look = (
            SecondLook(zoom, make_stabilizer(options))
            if zoom is not None and not zoom.first_size and not getattr(model, "temporal", False)
            else None
        )
        # The model the crops go through (the same network at their own shapes when the zoom says crop_size).
        self.crop_model = (
            model.crop_view(zoom) if self.second_look is not None and hasattr(model, "crop_view") else model
        )
        self.crop_radius = getattr(self.crop_model, "guided_radius", None)

    def prepare(self, height: int, width: int) -> None:
        """Load the background for frames of this size (errors come before any output exists)."""
        self.background.prepare(height, width)

    def predict(self, frames: Sequence[np.ndarray]) -> list[tuple]:
        """(stabilised low-resolution probability, restarted, guide, second look) for each RGB frame, in one
        network call (two with the second look); a temporal model runs frame by frame, each given the previous
        frame's stabilised probability. ``guide`` is the frame area-downscaled to the probability's size for
        :meth:`finish` (None when there is none to share); the network, the stabiliser and the guided filter all
        use that one downscale. ``second look``: None, or what :meth:`finish` needs to merge the crop's pass."""
        small = [_downscale(rgb, self.options.internal_size) for rgb in frames]
        shrink = getattr(self.model, "shrink", None)
        seen = [shrink(s) for s in small] if shrink is not None else small
        # Shared only where it is the same area downscale each of them would make of its own image.
        motion = [v if v.shape[0] < s.shape[0] else s for v, s in zip(seen, small, strict=True)]
        guides = [
            v if s is rgb and v.shape[0] < rgb.shape[0] else None for v, s, rgb in zip(seen, small, frames, strict=True)
        ]
        if getattr(self.model, "temporal", False):  # one by one: each frame gets the last one's stabilised output
            out = []
            for v, m, g in zip(seen, motion, guides, strict=True):
                out.append((*self._stabilize(self.model.predict_lowres([v], [self._previous])[0], m), g, None))
            return out
        lows = self.model.predict_lowres(seen)
        firsts = [(*self._stabilize(low, m), g) for low, m, g in zip(lows, motion, guides, strict=True)]
        if self.second_look is None:
            return [(*first, None) for first in firsts]
        return self._look_again(small, [s is rgb for s, rgb in zip(small, frames, strict=True)], firsts)

    def _look_again(self, small: list[np.ndarray], full: list[bool], firsts: list[tuple]) -> list[tuple]:
        """``firsts`` with the second look: the steady crop of each frame (``small``: as the network saw it,
        ``full``: whether that is the frame itself) through the network in one call, stabilised on its own."""
        look = self.second_look
        boxes = []
        for s, (low, restarted, _) in zip(small, firsts, strict=True):
            if restarted:
                look.reset()
            boxes.append(
                look.box(low, s.shape[:2], self.model.input_scale, self.threshold, self.crop_model.input_scale)
            )
        looked = self.crop_model.predict_crops(small, [box for box, _ in boxes])
        out = []
        for i, first in enumerate(firsts):
            if looked[i] is None:
                out.append((*first, None))
                continue
            (box, fresh), (crop, v, low) = boxes[i], looked[i]
            smaller = v.shape[0] < crop.shape[0]
            low = look.stabilize(low, v if smaller else crop, fresh)
            out.append((*first, (box, small[i].shape[:2], low, v if smaller and full[i] else None)))
        return out

    def _stabilize(self, low: np.ndarray, guide: np.ndarray) -> tuple[np.ndarray, bool]:
        restarted = False
        if self.stabilizer is not None:
            low = self.stabilizer.update(low, guide)
            restarted = self.stabilizer.restarted
        self._previous = low
        return low, restarted

    def finish(
        self,
        rgb: np.ndarray,
        low: np.ndarray,
        restarted: bool = False,
        guide: np.ndarray | None = None,
        second: tuple | None = None,
    ) -> np.ndarray:
        """The output frame from its (stabilised) probability, at once (the causal path: ``personseg live``):
        :meth:`probability`, then :meth:`render`."""
        return self.render(rgb, self.probability(rgb, low, guide, second), restarted)

    def push(self, tag: Any, rgb: np.ndarray, *predicted) -> list[tuple[Any, np.ndarray]]:
        """The file path: like :meth:`finish` (``predicted`` is one item of :meth:`predict`), through the
        non-causal window when there is one, so the frames come out ``options.window`` late as ``(tag, output)``,
        in order; :meth:`flush` gives the last ones."""
        if not self._window_radius:
            return [(tag, self.finish(rgb, *predicted))]
        if self.window is None:
            self.window = FlowWindow(self._window_radius)
        low, restarted, *rest = predicted
        prob = self.probability(rgb, low, *rest)
        ready = self.window.push((tag, rgb, restarted), rgb, prob, cut=restarted)
        return [(t, self.render(r, p, cut)) for (t, r, cut), p in ready]

    def flush(self) -> list[tuple[Any, np.ndarray]]:
        """The frames the window still holds, at the end of the stream."""
        if self.window is None:
            return []
        return [(t, self.render(r, p, cut)) for (t, r, cut), p in self.window.flush()]

    def probability(
        self, rgb: np.ndarray, low: np.ndarray, guide: np.ndarray | None = None, second: tuple | None = None
    ) -> np.ndarray:
        """The full-resolution probability: guided upsampling to the frame's size, merged with the crop's
        (``second``, from :meth:`predict`) where there is one."""
        prob = refine.guided_upsample(low, rgb, radius=self.radius, guide=guide)
        if second is not None:
            prob = self._merge_second(rgb, prob, *second)
        return prob

    def render(self, rgb: np.ndarray, prob: np.ndarray, restarted: bool = False) -> np.ndarray:
        """The mask post-processing (the main subject first; the tracker forgets its choice when the stabiliser
        ``restarted``), then :func:`render_frame`."""
        if self.subject is not None and restarted:
            self.subject.reset()
        alpha = postprocess(rgb, prob, self.options.remove, self.threshold, self.subject)
        return render_frame(rgb, alpha, self.kind, self.options.remove.foreground, self.background)

    def _merge_second(
        self, rgb: np.ndarray, prob: np.ndarray, box: tuple, seen_hw: tuple, low: np.ndarray, guide
    ) -> np.ndarray:
        """``prob`` with the crop's probability merged in; ``box`` is in the frame the network saw (``seen_hw``:
        smaller than ``rgb`` with ``--internal-size``; ``guide`` is given only when it is ``rgb`` itself)."""
        h, w = rgb.shape[:2]
        fy, fx = h / seen_hw[0], w / seen_hw[1]
        top, bottom = round(box[0] * fy), max(round(box[0] * fy) + 1, round(box[1] * fy))
        left, right = round(box[2] * fx), max(round(box[2] * fx) + 1, round(box[3] * fx))
        crop = rgb[top:bottom, left:right]
        second = refine.guided_upsample(low, crop, radius=self.crop_radius, guide=guide)
        settings = self.second_look.settings
        return merge(prob, second, (top, bottom, left, right), settings.margin, settings.weight)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """One frame, start to finish."""
        return self.finish(rgb, *self.predict([rgb])[0])

    def close(self) -> None:
        self.background.close()


def render_frame(
    rgb: np.ndarray, alpha: np.ndarray, kind: str, foreground: str, background: FrameBackground
) -> np.ndarray:
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


class FrameBackground:
    """What goes behind the person in each frame of a composite: colour, image, blurred scene or a looped video.

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
        bg = self.options.background
        if bg.video is not None:
            self._frames = iter_looped(bg.video, w, h)
            self._still = None
            first = next(self._frames)  # opens it now, so a bad file fails early
            self._first = first
        elif bg.image is not None:
            self._still = np.ascontiguousarray(compose.cover(bg.loaded().image, h, w))
        elif bg.blur is None:
            color = bg.color if bg.color is not None else DEFAULT_BACKGROUND
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
        return compose.blurred_background(rgb, alpha, float(self.options.background.blur))

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()
            self._frames = None
