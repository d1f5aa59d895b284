"""Encoding the processed frames, with the input's audio, into a file that is either complete or absent.

Output kinds (:data:`OUTPUT_KINDS`):

=============  ========================================  ======================================
kind           what                                      format
=============  ========================================  ======================================
composite      the person over a new background (RGB)    H.264 yuv420p in .mp4 / .mov / .mkv
webm-alpha     the person on transparency (RGBA)         VP9 yuva420p in .webm
prores         the person on transparency (RGBA)         ProRes 4444 (prores_ks, yuva444p10le) .mov
mask           the alpha as a grey video                 H.264 yuv420p (grey) in .mp4
png-seq        the person on transparency (RGBA)         a folder of numbered PNGs
=============  ========================================  ======================================

Audio is copied packet for packet when the output container accepts its codec, else re-encoded (AAC, or
Opus for WebM) with a logged notice. yuv420p needs an even width and height: an odd frame is padded by one
replicated row / column (logged). Everything is written to a hidden temporary file next to the output,
``.NAME.partial-PID-XXXXXXXX.EXT``, and renamed at the end; :meth:`VideoWriter.abort` deletes it,
:meth:`VideoWriter.close` with ``partial=True`` finalizes the frames written so far (after Ctrl-C) into a
playable file. A process killed outright (SIGKILL) cannot clean up: the next writer to the same output removes
partials whose process is gone (:func:`remove_stale_partials`).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from personseg.video.reader import VideoError, _av, _one_line

log = logging.getLogger(__name__)

OUTPUT_KINDS = ("composite", "webm-alpha", "prores", "mask", "png-seq")
#: kinds whose frames are RGBA (the cut-out) rather than RGB or grey
ALPHA_KINDS = ("webm-alpha", "prores", "png-seq")

_EXTENSION_KIND = {
    ".mp4": "composite",
    ".m4v": "composite",
    ".mkv": "composite",
    ".mov": "composite",
    ".avi": "composite",
    ".webm": "webm-alpha",
}
#: kind -> (codec, pixel format, container format or None to guess from the extension)
_ENCODING = {
    "composite": ("libx264", "yuv420p"),
    "mask": ("libx264", "yuv420p"),
    "webm-alpha": ("libvpx-vp9", "yuva420p"),
    "prores": ("prores_ks", "yuva444p10le"),
}
_DEFAULT_EXTENSION = {"composite": ".mp4", "mask": ".mp4", "webm-alpha": ".webm", "prores": ".mov"}


def kind_from_path(path: str | os.PathLike) -> str:
    """The output kind an output name implies: ``.webm`` -> webm-alpha, no extension (a folder) -> png-seq,
    ``.mp4`` / ``.mov`` / ``.mkv`` / ``.m4v`` / ``.avi`` -> composite."""
    suffix = Path(path).suffix.lower()
    if suffix == "" or str(path).endswith(("/", os.sep)):
        return "png-seq"
    if suffix in _EXTENSION_KIND:
        return _EXTENSION_KIND[suffix]
    raise VideoError(
        f"{path}: cannot tell the output kind from the extension {suffix!r}; use .mp4, .mov, .webm, "
        "a folder for PNGs, or give --output-kind"
    )


def check_output(path: str | os.PathLike, kind: str) -> None:
    """Refuse output names that cannot hold ``kind`` (e.g. transparency in an .mp4)."""
    suffix = Path(path).suffix.lower()
    if kind not in OUTPUT_KINDS:
        raise VideoError(f"output kind {kind!r}: choose from {', '.join(OUTPUT_KINDS)}")
    if kind == "webm-alpha" and suffix not in (".webm", ".mkv"):
        raise VideoError(f"{path}: webm-alpha output needs a .webm (or .mkv) name")
    if kind == "prores" and suffix not in (".mov", ".mkv"):
        raise VideoError(f"{path}: prores output needs a .mov (or .mkv) name")
    if kind == "png-seq" and suffix in (*_EXTENSION_KIND, ".png"):
        raise VideoError(f"{path}: png-seq output is a folder of PNGs; give a folder name without an extension")
    if kind in ("composite", "mask") and suffix in (".webm", ".png", ""):
        raise VideoError(f"{path}: {kind} output is H.264; name it .mp4, .mov or .mkv")


#: What marks a partial output: ``.NAME.partial-PID-XXXXXXXX.EXT`` beside the output.
PARTIAL_MARK = ".partial-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def remove_stale_partials(output: str | os.PathLike) -> list[Path]:
    """Delete the partial files of ``output`` left by runs that were killed (SIGKILL, power loss).

    A signal personseg can catch (Ctrl-C, SIGTERM, SIGHUP) never leaves one; a killed process cannot clean up,
    so the next run to the same output does, judging by the process id in the name (a running one's is kept).
    """
    output = Path(output)
    removed = []
    for stem in {output.stem, output.name}:
        for old in output.parent.glob(f".{glob.escape(stem)}{PARTIAL_MARK}*"):
            pid = old.name[len(stem) + 1 + len(PARTIAL_MARK) :].split("-", 1)[0]
            if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
                continue
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
            log.info("removed %s, left by an earlier run that was killed (process %s)", old, pid)
            removed.append(old)
    return removed


class VideoWriter:
    """Write frames to ``path`` as ``kind``; the file appears only on :meth:`close`.

    ``time_base`` is the unit of the ``pts`` given to :meth:`write` (the input stream's, so variable frame
    rate timing is kept); ``fps`` is the nominal rate. ``audio_from`` is a media file whose first audio
    stream is carried over. ``quality`` is x264's CRF / VP9's CRF (lower is better).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        kind: str,
        width: int,
        height: int,
        fps: Fraction,
        time_base: Fraction | None = None,
        audio_from: str | os.PathLike | None = None,
        quality: int | None = None,
    ) -> None:
        check_output(path, kind)
        self.path = Path(path)
        self.kind = kind
        self.width, self.height = width, height
        self.fps = Fraction(fps)
        self.time_base = Fraction(time_base) if time_base else 1 / self.fps
        self.frames = 0
        self._audio = None
        self._closed = False
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VideoError(f"{self.path}: cannot create its folder ({exc.strerror or exc})") from None
        remove_stale_partials(self.path)
        # The partial's name carries this process's id, so a later run can tell a killed run's leftover.
        prefix = f".{self.path.name if kind == 'png-seq' else self.path.stem}{PARTIAL_MARK}{os.getpid()}-"
        if kind == "png-seq":
            self._tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
            self._container = None
            if audio_from is not None:
                log.info("a PNG sequence has no audio track: the input's audio is not written")
            return
        suffix = self.path.suffix or _DEFAULT_EXTENSION[kind]
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._open_video(quality)
            if audio_from is not None:
                self._audio = _AudioCarrier(audio_from, self._container)
        except BaseException:
            self.abort()
            raise

    def _open_video(self, quality: int | None) -> None:
        av = _av()
        codec, pix_fmt = _ENCODING[self.kind]
        self._pad = (0, 0)
        if pix_fmt.endswith("420p") and codec == "libx264" and (self.width % 2 or self.height % 2):
            self._pad = (self.height % 2, self.width % 2)
            log.warning(
                "%s: %dx%d is odd; yuv420p needs even sizes, so one edge row/column is repeated (-> %dx%d)",
                self.path,
                self.width,
                self.height,
                self.width + self._pad[1],
                self.height + self._pad[0],
            )
        try:
            self._container = av.open(str(self._tmp), "w")
            stream = self._container.add_stream(codec, rate=self.fps)
        except (av.error.FFmpegError, ValueError) as exc:
            raise VideoError(f"{self.path}: cannot open an output with {codec} ({_one_line(exc)})") from None
        stream.width = self.width + self._pad[1]
        stream.height = self.height + self._pad[0]
        stream.pix_fmt = pix_fmt
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        options = {}
        if codec == "libx264":
            options = {"crf": str(quality if quality is not None else 18), "preset": "veryfast"}
        elif codec == "libvpx-vp9":
            # Constant quality; row-mt and a fast speed keep VP9 (slow by default) usable.
            options = {"crf": str(quality if quality is not None else 30), "b": "0", "row-mt": "1", "speed": "6"}
            options["auto-alt-ref"] = "0"  # alt-ref frames are incompatible with the alpha plane in libvpx
        elif codec == "prores_ks":
            options = {"profile": "4444", "vendor": "apl0", "alpha_bits": "16"}
        stream.options = options
        self._stream = stream
        self._format = {"composite": "rgb24", "mask": "gray", "webm-alpha": "rgba", "prores": "rgba"}[self.kind]

    # --- writing ------------------------------------------------------------------------------------------

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        """Add one frame: RGB for composite, H x W uint8 for mask, RGBA for the alpha kinds."""
        if self._closed:
            raise VideoError(f"{self.path}: the writer is already closed")
        expected = {"composite": 3, "mask": 1}.get(self.kind, 4)
        channels = 1 if image.ndim == 2 else image.shape[2]
        if image.shape[:2] != (self.height, self.width) or channels != expected:
            raise ValueError(
                f"{self.path}: frame of shape {image.shape} does not match {self.height}x{self.width}x{expected}"
            )
        if pts is None:
            pts = round(self.frames / (self.fps * self.time_base))
        if self.kind == "png-seq":
            ok = cv2.imwrite(str(self._tmp / f"frame_{self.frames:06d}.png"), cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA))
            if not ok:
                raise VideoError(f"{self.path}: could not write PNG frame {self.frames}")
            self.frames += 1
            return
        if self._pad != (0, 0):
            pad = ((0, self._pad[0]), (0, self._pad[1])) + (((0, 0),) if image.ndim == 3 else ())
            image = np.pad(image, pad, mode="edge")
        av = _av()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=self._format)
        frame.pts = int(pts)
        frame.time_base = self.time_base
        try:
            if self._audio is not None:
                self._audio.mux_until(float(pts * self.time_base))
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.path}: encoding frame {self.frames} failed ({_one_line(exc)})") from None
        self.frames += 1
        self._end_time = float(pts * self.time_base + 1 / self.fps)

    def close(self, partial: bool = False) -> Path | None:
        """Finish the file and move it into place; returns its path, or ``None`` if nothing was written.

        ``partial``: the run was interrupted; audio is cut at the last frame and a notice is logged.
        """
        if self._closed:
            return self.path if self.path.exists() else None
        self._closed = True
        if self.frames == 0:
            self._discard()
            return None
        av = _av()
        try:
            if self._container is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                if self._audio is not None:
                    self._audio.finish(self._end_time if partial else None)
                self._container.close()
            self._move_into_place()
        except av.error.FFmpegError as exc:
            self._discard()
            raise VideoError(f"{self.path}: finishing the file failed ({_one_line(exc)})") from None
        except BaseException:
            self._discard()
            raise
        if partial:
            log.warning("%s: interrupted; kept the %d frames written so far", self.path, self.frames)
        return self.path

    def abort(self) -> None:
        """Delete everything written (an error happened): no half-written output is ever left."""
        self._closed = True
        self._discard()

    def _discard(self) -> None:
        if self._audio is not None:
            self._audio.close()
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is deleted anyway
                log.debug("closing the partial output failed", exc_info=True)
            self._container = None
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp, ignore_errors=True)
        else:
            self._tmp.unlink(missing_ok=True)

    def _move_into_place(self) -> None:
        if self._audio is not None:
            self._audio.close()
        # mkstemp / mkdtemp create private files; the output gets the usual permissions instead.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, (0o777 if self._tmp.is_dir() else 0o666) & ~umask)
        if self.kind == "png-seq":
            if self.path.exists():
                if not self.path.is_dir():
                    raise VideoError(f"{self.path}: exists and is not a folder; PNG frames need a folder")
                for old in self.path.glob("frame_*.png"):
                    old.unlink()
                for new in sorted(self._tmp.iterdir()):
                    os.replace(new, self.path / new.name)
                self._tmp.rmdir()
            else:
                os.replace(self._tmp, self.path)
        else:
            os.replace(self._tmp, self.path)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close(partial=True)
        else:
            self.abort()


class _AudioCarrier:
    """The first audio stream of a media file, muxed alongside the video as it is written.

    Packets are copied when the output container accepts the codec, else decoded and re-encoded
    (AAC for MP4/MOV, Opus for WebM). Audio is interleaved with the video by time, so the file streams well.
    """

    def __init__(self, source: str | os.PathLike, output) -> None:
        av = _av()
        self._input = av.open(os.fspath(source), metadata_errors="ignore")
        self._in_stream = self._input.streams.audio[0]
        self._output = output
        self._packets = self._input.demux(self._in_stream)
        self._pending = None
        codec = self._in_stream.codec_context.name
        supported = getattr(output, "supported_codecs", None)
        self.copy = supported is None or codec in supported
        if self.copy:
            self._out_stream = output.add_stream_from_template(self._in_stream)
            log.info("audio: copying the %s track without re-encoding", codec)
        else:
            target = "libopus" if output.format.name in ("webm", "matroska,webm") else "aac"
            rate = 48000 if target == "libopus" else min(self._in_stream.rate or 48000, 96000)
            self._out_stream = output.add_stream(target, rate=rate)
            self._out_stream.layout = "stereo" if (self._in_stream.channels or 2) >= 2 else "mono"
            self._resampler = av.AudioResampler(
                format=self._out_stream.codec_context.format.name, layout=self._out_stream.layout, rate=rate
            )
            log.warning("audio: %s cannot go into %s; re-encoding it to %s", codec, output.format.name, target)
        self._closed = False

    def _next(self):
        if self._pending is not None:
            packet, self._pending = self._pending, None
            return packet
        for packet in self._packets:
            if packet.dts is not None or packet.pts is not None:
                return packet
        return None

    def _time(self, packet) -> float:
        ts = packet.pts if packet.pts is not None else packet.dts
        return float(ts * packet.time_base)  # the input's own timeline, as the video frames' pts are

    def mux_until(self, seconds: float | None) -> None:
        """Mux the audio up to ``seconds`` (all of it for ``None``)."""
        while True:
            packet = self._next()
            if packet is None:
                return
            if seconds is not None and self._time(packet) > seconds:
                self._pending = packet
                return
            self._mux(packet)

    def _mux(self, packet) -> None:
        if self.copy:
            packet.stream = self._out_stream
            self._output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            for resampled in self._resampler.resample(frame):
                for out in self._out_stream.encode(resampled):
                    self._output.mux(out)

    def finish(self, end: float | None) -> None:
        """Mux the rest of the audio (up to ``end`` seconds when the video was cut short) and flush."""
        self.mux_until(end)
        if not self.copy:
            for resampled in self._resampler.resample(None):
                for out in self._out_stream.encode(resampled):
                    self._output.mux(out)
            for out in self._out_stream.encode(None):
                self._output.mux(out)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._input.close()
