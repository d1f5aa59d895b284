"""Decoding a video (any container PyAV opens) or an image sequence into upright RGB frames.

* Rotation: phones store portrait video landscape with a display matrix; the decoder attaches it to every
  frame (``frame.rotation``, counter-clockwise degrees), and :func:`apply_rotation` turns the pixels upright
  so masks, backgrounds and the output all use the size the viewer sees.
* Timing: ``fps`` is the stream's average rate; each :class:`Frame` keeps its own ``pts`` so variable frame
  rate video keeps its timing when re-encoded.
* Image sequences: a glob (``frames/*.png``) or a printf pattern (``frames/%05d.png``), played at
  ``sequence_fps``.

Every failure to open or decode is a :class:`VideoError` (a ``ValueError``) whose message names the file.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_PRINTF = re.compile(r"%(0?)(\d*)d")


class VideoError(ValueError):
    """A video that cannot be read or written; the message names the file and says what to do."""


@dataclass
class Frame:
    """One decoded frame: upright RGB, its presentation time in ``time_base`` units, and its index."""

    rgb: np.ndarray
    pts: int
    index: int


@dataclass
class VideoInfo:
    """What the reader knows before decoding: size (upright), rate, count, rotation, audio."""

    path: str
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frame_count: int
    """Frames in the stream (from the header, or estimated from the duration); 0 when unknown."""
    rotation: int
    """Counter-clockwise degrees applied to the coded pixels (0, 90, 180, 270)."""
    has_audio: bool
    codec: str
    is_sequence: bool = False


def apply_rotation(rgb: np.ndarray, degrees: int) -> np.ndarray:
    """``rgb`` turned counter-clockwise by ``degrees`` (a multiple of 90; others are rounded), contiguous."""
    k = round(degrees / 90) % 4
    return rgb if k == 0 else np.ascontiguousarray(np.rot90(rgb, k))


def is_sequence_pattern(spec: str | os.PathLike) -> bool:
    """True for a glob (``*``, ``?``, ``[``) or a printf pattern (``%d``, ``%05d``)."""
    text = os.fspath(spec)
    return glob.has_magic(text) or _PRINTF.search(Path(text).name) is not None


def expand_sequence(spec: str | os.PathLike) -> list[Path]:
    """The files of an image sequence, in order: a glob sorted by name, or a printf pattern by number."""
    text = os.fspath(spec)
    name = Path(text).name
    match = _PRINTF.search(name)
    if match is None:
        return [Path(p) for p in sorted(glob.glob(text)) if Path(p).is_file()]
    folder = Path(text).parent
    width = match.group(2)
    digits = rf"\d{{{int(width)}}}" if match.group(1) and width else r"\d+"
    regex = re.compile(re.escape(name[: match.start()]) + f"({digits})" + re.escape(name[match.end() :]) + "$")
    found = []
    if folder.is_dir():
        for entry in folder.iterdir():
            m = regex.match(entry.name)
            if m and entry.is_file():
                found.append((int(m.group(1)), entry))
    return [p for _, p in sorted(found)]


def _av():
    try:
        import av
    except ImportError:
        raise ImportError("video needs PyAV: pip install 'personseg[video]'") from None
    return av


def _one_line(exc: BaseException) -> str:
    """The error's reason on one line (FFmpeg's own text without the errno and the repeated file name)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


class VideoReader:
    """Iterate the upright RGB frames of a video file or image sequence; use as a context manager.

    ``max_frames`` stops early (0: all). Opening checks the file is a readable video, so errors come at
    construction, before any output is created.
    """

    def __init__(self, source: str | os.PathLike, sequence_fps: float = 25.0, max_frames: int = 0) -> None:
        self.source = os.fspath(source)
        self.max_frames = max_frames
        self._container = None
        self._files: list[Path] = []
        if is_sequence_pattern(self.source) and not Path(self.source).exists():
            self.info = self._open_sequence(sequence_fps)
        else:
            self.info = self._open_container()

    # --- opening ------------------------------------------------------------------------------------------

    def _open_container(self) -> VideoInfo:
        av = _av()
        path = Path(self.source)
        if not path.exists():
            raise VideoError(f"{self.source}: no such file")
        if path.is_dir():
            raise VideoError(f"{self.source}: is a folder; for an image sequence give a pattern like {path}/*.png")
        if path.stat().st_size == 0:
            raise VideoError(f"{self.source}: the file is empty (0 bytes)")
        try:
            container = av.open(self.source, metadata_errors="ignore")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise VideoError(f"{self.source}: not a readable video ({_one_line(exc)})") from None
        if not container.streams.video:
            container.close()
            raise VideoError(f"{self.source}: has no video stream (audio only or not a video)")
        self._container = container
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # Decode the first frame now: a truncated or corrupt file fails here, before any output exists.
        self._decoder = container.decode(stream)
        try:
            first = next(self._decoder)
        except StopIteration:
            self.close()
            raise VideoError(f"{self.source}: the video stream has no decodable frame (truncated?)") from None
        except av.error.FFmpegError as exc:
            self.close()
            raise VideoError(f"{self.source}: cannot decode the video ({_one_line(exc)})") from None
        self._first = first
        rotation = int(getattr(first, "rotation", 0) or 0) % 360
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        time_base = stream.time_base or Fraction(1, 90000)
        count = int(stream.frames or 0)
        if not count and stream.duration:
            count = int(round(float(stream.duration * time_base * fps)))
        elif not count and container.duration:
            count = int(round(container.duration / 1_000_000 * float(fps)))
        width, height = first.width, first.height
        if round(rotation / 90) % 2:
            width, height = height, width
        info = VideoInfo(
            path=self.source,
            width=width,
            height=height,
            fps=Fraction(fps),
            time_base=Fraction(time_base),
            frame_count=count,
            rotation=rotation,
            has_audio=bool(container.streams.audio),
            codec=stream.codec_context.name,
        )
        log.info(
            "%s: %dx%d %s, %.3f fps, ~%d frames%s%s",
            self.source,
            width,
            height,
            info.codec,
            float(fps),
            count,
            f", rotated {rotation} deg" if rotation else "",
            ", with audio" if info.has_audio else "",
        )
        return info

    def _open_sequence(self, sequence_fps: float) -> VideoInfo:
        self._files = expand_sequence(self.source)
        if not self._files:
            raise VideoError(f"{self.source}: no image matches this pattern")
        if sequence_fps <= 0:
            raise VideoError(f"{self.source}: the sequence frame rate must be > 0, got {sequence_fps}")
        first = self._read_image(self._files[0])
        fps = Fraction(sequence_fps).limit_denominator(1001)
        return VideoInfo(
            path=self.source,
            width=first.shape[1],
            height=first.shape[0],
            fps=fps,
            time_base=1 / fps,
            frame_count=len(self._files),
            rotation=0,
            has_audio=False,
            codec="image sequence",
            is_sequence=True,
        )

    @staticmethod
    def _read_image(path: Path) -> np.ndarray:
        av = _av()
        try:
            with av.open(str(path)) as container:
                frame = next(container.decode(video=0))
                return apply_rotation(frame.to_ndarray(format="rgb24"), int(getattr(frame, "rotation", 0) or 0))
        except (av.error.FFmpegError, OSError, StopIteration) as exc:
            raise VideoError(f"{path}: not a readable image ({_one_line(exc)})") from None

    # --- reading ------------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Frame]:
        if self._files:
            yield from self._iter_sequence()
        else:
            yield from self._iter_container()

    def _iter_sequence(self) -> Iterator[Frame]:
        size = (self.info.height, self.info.width)
        for i, path in enumerate(self._files):
            if self.max_frames and i >= self.max_frames:
                return
            rgb = self._read_image(path)
            if rgb.shape[:2] != size:
                raise VideoError(f"{path}: size {rgb.shape[1]}x{rgb.shape[0]} differs from the first image's")
            yield Frame(rgb, i, i)

    def _iter_container(self) -> Iterator[Frame]:
        av = _av()
        if self._container is None:
            raise VideoError(f"{self.source}: the reader is closed")
        step = max(1, round(1 / (self.info.fps * self.info.time_base))) if self.info.fps else 1
        last_pts = None
        index = 0
        frames = self._chain_first()
        while True:
            if self.max_frames and index >= self.max_frames:
                return
            try:
                frame = next(frames)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                raise VideoError(f"{self.source}: decoding failed at frame {index} ({_one_line(exc)})") from None
            pts = frame.pts
            if pts is None or (last_pts is not None and pts <= last_pts):
                pts = 0 if last_pts is None else last_pts + step  # missing or repeated timestamps
            last_pts = pts
            rgb = apply_rotation(frame.to_ndarray(format="rgb24"), self.info.rotation)
            yield Frame(rgb, pts, index)
            index += 1

    def _chain_first(self) -> Iterator:
        first, self._first = self._first, None
        if first is not None:
            yield first
        yield from self._decoder

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_looped(source: str | os.PathLike, width: int, height: int) -> Iterator[np.ndarray]:
    """Frames of ``source`` scaled to cover ``width x height``, restarting at the end forever (a background)."""
    from personseg.inference.compose import cover

    while True:
        count = 0
        with VideoReader(source) as reader:
            for frame in reader:
                count += 1
                yield np.ascontiguousarray(cover(frame.rgb, height, width))
        if count == 0:
            raise VideoError(f"{source}: the background video has no frames")
