"""``personseg video IN OUT``: remove or replace the background of a video, keeping its sound.

The output kind comes from OUT's extension unless ``--output-kind`` is given: ``.mp4``/``.mov``/``.mkv``
composite (the person over ``--bg-*``, chroma green by default), ``.webm`` VP9 with alpha, a folder PNGs.
On an error nothing is written (exit 1); Ctrl-C keeps the frames done so far as a playable file (exit 130);
SIGTERM / SIGHUP delete the partial file (exit 143 / 129), and a partial left by a killed run (SIGKILL) is
removed by the next run to the same output.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys

from personseg.cli import options

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Remove or replace the background of a video (or an image sequence: a glob like 'frames/*.png' or a "
    "pattern like frames/%05d.png). Audio is kept. The output kind follows OUT's extension: .mp4/.mov/.mkv "
    "composite, .webm VP9 with alpha, a folder (no extension) PNG frames with alpha; or give --output-kind."
)


def add_bg_video_option(parser: argparse.ArgumentParser) -> None:
    """``--bg-video``: shareable with any command that composites video (``live`` uses it too)."""
    parser.add_argument(
        "--bg-video",
        default=None,
        metavar="PATH",
        help="put the person on another video (scaled to cover, looped to length); excludes the other --bg-*",
    )


def add_smoothing_options(parser: argparse.ArgumentParser) -> None:
    """``--smooth`` / ``--no-smooth`` / ``--stabilizer``: temporal stabilisation, shared by ``video`` and ``live``."""
    from personseg.video.stabilize import DEFAULT_STRENGTH, STABILIZERS

    group = parser.add_argument_group("temporal smoothing")
    group.add_argument(
        "--smooth",
        type=float,
        default=DEFAULT_STRENGTH,
        metavar="STRENGTH",
        help=f"how much still parts of the mask follow the previous frames, in [0, 1); moving parts always "
        f"follow the current frame (default: {DEFAULT_STRENGTH})",
    )
    group.add_argument("--no-smooth", action="store_true", help="no temporal smoothing (each frame on its own)")
    group.add_argument(
        "--stabilizer",
        choices=STABILIZERS,
        default=STABILIZERS[0],
        help="flow: the previous mask is first moved along the optical flow, so a panning camera or a moving "
        "person neither lags nor flickers (under 1 ms more per frame); plain: blend in place where the frame did not "
        "change (default: %(default)s)",
    )


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    from personseg.video.writer import OUTPUT_KINDS

    parser = sub.add_parser(name, help=help_text, description=DESCRIPTION)
    parser.add_argument("input", metavar="IN", help="video file, or image-sequence glob / printf pattern")
    parser.add_argument("output", metavar="OUT", help="output file, or folder for --output-kind png-seq")
    parser.add_argument(
        "--output-kind",
        choices=OUTPUT_KINDS,
        default=None,
        help="composite (H.264 over a background), webm-alpha (VP9 with alpha), prores (ProRes 4444 with "
        "alpha, .mov), mask (grey H.264), png-seq (RGBA PNGs in a folder); default: from OUT's extension",
    )
    parser.add_argument("--batch", type=int, default=4, metavar="N", help="frames per network call (default: 4)")
    parser.add_argument(
        "--internal-size",
        type=int,
        default=0,
        metavar="PX",
        help="downscale frames to this longest side before the network (edges are still refined at full "
        "resolution); 0: no (default)",
    )
    parser.add_argument("--quality", type=int, default=None, metavar="CRF", help="encoder CRF (lower is better)")
    parser.add_argument("--no-audio", action="store_true", help="do not carry the input's audio over")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of an image-sequence input (default: 25)")
    parser.add_argument("--max-frames", type=int, default=0, metavar="N", help="stop after N frames (0: all)")
    parser.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_frame_options(parser)
    parser.set_defaults(func=run)


def add_frame_options(parser: argparse.ArgumentParser) -> None:
    """What happens to each frame (model, smoothing, post-processing, background): shared by video and live."""
    add_smoothing_options(parser)
    options.add_model_option(parser)
    options.add_provider_option(parser)
    options.add_device_option(parser)
    options.add_threads_option(parser)
    options.add_postprocess_options(parser)
    options.add_background_options(parser)
    add_bg_video_option(parser)


def video_options_from_args(args: argparse.Namespace):
    """The :class:`~personseg.video.VideoOptions` the parsed arguments describe (ValueError names the flag).

    Flags a command does not define (``live`` has no --batch or --output-kind) take their defaults.
    """
    from personseg.video import VideoOptions

    def arg(name: str, default=None):
        return getattr(args, name, default)

    given = [f for f in ("bg_color", "bg_image", "bg_blur", "bg_video") if arg(f) is not None]
    if len(given) > 1:
        raise ValueError(f"choose one background: {', '.join('--' + g.replace('_', '-') for g in given)}")
    if not args.no_smooth and not 0.0 <= args.smooth < 1.0:
        raise ValueError(f"--smooth must be in [0, 1) (or --no-smooth), got {args.smooth}")
    checks = (("batch", 1, 4), ("internal_size", 0, 0), ("max_frames", 0, 0))
    for name, low, default in checks:
        if arg(name, default) < low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, got {arg(name)}")
    if arg("fps", 25.0) <= 0:
        raise ValueError(f"--fps must be > 0, got {arg('fps')}")
    return VideoOptions(
        output_kind=arg("output_kind"),
        background_color=arg("bg_color"),
        background_image=arg("bg_image"),
        background_blur=arg("bg_blur"),
        background_video=arg("bg_video"),
        smooth=not args.no_smooth and args.smooth > 0,
        smooth_strength=0.0 if args.no_smooth else args.smooth,
        stabilizer=args.stabilizer,
        batch_size=arg("batch", 4),
        internal_size=arg("internal_size", 0),
        remove=options.remove_options_from_args(args),
        audio=not arg("no_audio", False),
        quality=arg("quality"),
        sequence_fps=arg("fps", 25.0),
        max_frames=arg("max_frames", 0),
    )


def _say(message: object) -> None:
    print(f"personseg video: {' '.join(str(message).split())}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from personseg.video import process_video
    from personseg.video.writer import check_output, kind_from_path

    try:
        video_options = video_options_from_args(args)
        kind = video_options.output_kind or kind_from_path(args.output)
        check_output(args.output, kind)
    except ValueError as exc:
        _say(exc)
        return 2
    out = Path(args.output)
    if out.exists() and not args.force and not (kind == "png-seq" and out.is_dir() and not any(out.iterdir())):
        _say(f"{out} exists; use --force to overwrite it")
        return 2
    try:
        model = options.load_model_from_args(args)
    except (OSError, ValueError, ImportError) as exc:
        _say(exc)
        return 2
    bar, progress = _progress_bar(args)
    try:
        with terminate_cleanly():
            result = process_video(args.input, args.output, model, video_options, progress=progress)
    except Terminated as exc:
        _say(f"stopped by {exc.name}; nothing written to {args.output}")
        return 128 + exc.signum
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        # VideoError is a ValueError and already names the file; anything else gets the input's name.
        text = " ".join(str(exc).split())
        _say(text if args.input in text or args.output in text else f"{args.input}: {type(exc).__name__}: {text}")
        log.debug("video failed", exc_info=True)
        return 1
    finally:
        if bar is not None:
            bar.close()
    print(
        f"personseg video: wrote {result.output} ({result.kind}, {result.frames} frames, {result.fps:.1f} frames/s)",
        file=sys.stderr,
    )
    return 0


class Terminated(BaseException):
    """SIGTERM / SIGHUP as an exception, so the pipeline's cleanup runs (a BaseException: nothing swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def terminate_cleanly():
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread: the writer then deletes its
    partial file (the default action would kill the process and leave it). Ctrl-C keeps its own meaning
    (finish the frames done so far). SIGKILL cannot be caught: the next run to the same output removes the
    partial it left (``personseg.video.writer.remove_stale_partials``)."""

    def handler(signum: int, frame) -> None:
        signal.signal(signum, signal.SIG_IGN)  # a second one must not interrupt the cleanup
        raise Terminated(signum)

    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {}
    try:
        for sig in wanted:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (embedded use): leave the handlers alone
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _progress_bar(args: argparse.Namespace):
    """A tqdm bar (frames/s and ETA) and the progress callback feeding it; (None, None) with -q or no tqdm."""
    if args.quiet:
        return None, None
    try:
        from tqdm import tqdm
    except ImportError:  # no tqdm: no bar
        return None, None
    # disable=None: no bar when stderr is not a terminal (logs, CI).
    bar = tqdm(total=None, desc="personseg video", unit="frame", file=sys.stderr, disable=None)

    def update(done: int, info) -> None:
        if bar.total is None and info.frame_count:
            bar.total = min(info.frame_count, args.max_frames) if args.max_frames else info.frame_count
        bar.update(done - bar.n)

    return bar, update
