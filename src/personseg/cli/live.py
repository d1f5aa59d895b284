"""``personseg live``: replace the background of a webcam, stream or file as it plays.

Frames come from OpenCV's ``VideoCapture`` (a camera index, a URL, or a file for testing); each is segmented,
stabilised (motion-compensated unless ``--stabilizer plain`` or ``--no-smooth``), optionally narrowed to the
main subject (``--subject main``) and composited over the chosen background (the blurred scene by default).
The result goes to a window with an FPS readout (``q`` or Esc quits), to a virtual camera
(``--virtual-camera``, needs ``pip install 'personseg[live]'``) and/or to a video file (``--output``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from personseg.cli import options
from personseg.cli.video import add_frame_options

log = logging.getLogger(__name__)

WINDOW = "personseg live (q to quit)"
DEFAULT_BLUR = 15.0
DESCRIPTION = (
    "Replace the background of a webcam, stream or video file as it plays (default: the scene blurred). "
    "Shows a window with the frame rate (q or Esc quits) unless --no-window; --virtual-camera sends the "
    "result to a virtual camera, --output saves it."
)


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=DESCRIPTION)
    parser.add_argument(
        "--camera", default="0", help="camera index (0, 1 ...), stream URL, or a video file (default: 0)"
    )
    parser.add_argument("--virtual-camera", action="store_true", help="send the result to a virtual camera")
    parser.add_argument("--no-window", action="store_true", help="no preview window (headless)")
    parser.add_argument("--max-frames", type=int, default=0, metavar="N", help="stop after N frames (0: never)")
    parser.add_argument("--output", default=None, metavar="PATH", help="also save the result as a video (.mp4)")
    parser.add_argument("--width", type=int, default=None, help="ask the camera for this width")
    parser.add_argument("--height", type=int, default=None, help="ask the camera for this height")
    add_frame_options(parser)
    # Live is about frame rate: without colour estimation 1280x720 runs at 26-33 instead of 18 fps (BENCHMARKS.md).
    parser.set_defaults(func=run, foreground="none")


def _say(message: object) -> None:
    print(f"personseg live: {' '.join(str(message).split())}", file=sys.stderr)


def open_capture(spec: str, width: int | None = None, height: int | None = None):
    """An opened ``cv2.VideoCapture`` for a camera index, URL or file; ValueError if it cannot be opened."""
    import cv2

    source: int | str = int(spec) if spec.strip().isdigit() else spec
    # OpenCV prints its own [ WARN ] lines for every backend it tries; our one-line error says what failed.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        cap = cv2.VideoCapture(source)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        cap.release()
        what = f"camera {source}" if isinstance(source, int) else source
        raise ValueError(f"{what}: cannot open it (no such camera, file or stream; try another --camera)")
    if width:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    if height:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    return cap


def open_virtual_camera(width: int, height: int, fps: float):
    """A ``pyvirtualcam.Camera`` (imported only here); a clear error when it or its driver is missing."""
    try:
        import pyvirtualcam
    except ImportError:
        raise ImportError(
            "--virtual-camera needs pyvirtualcam: pip install 'personseg[live]' (and a virtual camera driver: "
            "OBS on Windows/macOS, v4l2loopback on Linux)"
        ) from None
    try:
        return pyvirtualcam.Camera(width=width, height=height, fps=fps)
    except RuntimeError as exc:
        raise RuntimeError(f"no virtual camera device available ({exc})") from None


def draw_fps(bgr, fps: float) -> None:
    """The frame rate in the top-left corner, white on a dark outline so it reads on any background."""
    import cv2

    text = f"{fps:.1f} fps"
    scale = max(0.4, bgr.shape[0] / 720)
    for color, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(bgr, text, (8, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def run(args: argparse.Namespace) -> int:
    from personseg.cli.video import Terminated, terminate_cleanly

    try:
        with terminate_cleanly():  # SIGTERM / SIGHUP: the recording so far is kept, as with Ctrl-C
            return _run(args)
    except Terminated as exc:
        _say(f"stopped by {exc.name}")
        return 128 + exc.signum


def _run(args: argparse.Namespace) -> int:
    import cv2

    from personseg.cli.video import Terminated, video_options_from_args
    from personseg.inference.options import Background
    from personseg.video import VideoWriter
    from personseg.video.grab import FrameGrabber
    from personseg.video.pipeline import FrameProcessor

    try:
        video_options = video_options_from_args(args, default_background=Background(blur=DEFAULT_BLUR))
        model = options.load_model_from_args(args)
        cap = open_capture(args.camera, args.width, args.height)
    except (OSError, ValueError, ImportError) as exc:
        _say(exc)
        return 2

    writer = cam = processor = grabber = None
    shown = False
    frames = 0
    fps = 0.0
    start = first_done = time.perf_counter()
    try:
        ok, bgr = cap.read()
        if not ok:
            _say(f"{args.camera}: no frame could be read")
            return 1
        height, width = bgr.shape[:2]
        rate = cap.get(cv2.CAP_PROP_FPS) or 30.0
        rate = rate if 1.0 <= rate <= 240.0 else 30.0
        processor = FrameProcessor(model, video_options, "composite")
        processor.prepare(height, width)
        if args.output:
            from fractions import Fraction

            writer = VideoWriter(args.output, "composite", width, height, Fraction(rate).limit_denominator(1001))
        if args.virtual_camera:
            cam = open_virtual_camera(width, height, rate)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        # The next frame is read while this one is processed; a camera or stream keeps only its newest frame.
        grabber = FrameGrabber(cap, latest_only=not Path(args.camera).is_file())
        last = time.perf_counter()
        while rgb is not None:
            out = processor(rgb)  # the steps of personseg video, frame by frame
            frames += 1
            now = time.perf_counter()
            if frames == 1:
                first_done = now
            fps = 1.0 / max(now - last, 1e-6) if frames == 1 else 0.9 * fps + 0.1 / max(now - last, 1e-6)
            last = now
            if writer is not None:
                writer.write(out)
            if cam is not None:
                cam.send(out)
            if not args.no_window:
                preview = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
                draw_fps(preview, fps)
                try:
                    cv2.imshow(WINDOW, preview)
                except cv2.error:
                    raise RuntimeError("cannot open a window here (headless OpenCV?); use --no-window") from None
                shown = True
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
            if args.max_frames and frames >= args.max_frames:
                break
            rgb = next(grabber, None)
    except (KeyboardInterrupt, Terminated):
        if writer is not None:
            writer.close(partial=True)
            writer = None
        raise
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        if writer is not None:
            writer.abort()
            writer = None
        _say(exc)
        return 1
    finally:
        if grabber is not None:
            grabber.close()
        cap.release()
        if processor is not None:
            processor.close()
        if writer is not None:
            writer.close()
        if cam is not None:
            cam.close()
        if shown:
            cv2.destroyAllWindows()
    end = time.perf_counter()
    seconds = end - start
    # The first frame also pays for ONNX Runtime's first run and the processor's set-up; the rate after it is the
    # one a webcam session settles at.
    steady = f"; {(frames - 1) / max(end - first_done, 1e-6):.1f} fps after the first frame" if frames > 1 else ""
    _say(f"{frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-6):.1f} fps{steady})")
    return 0
