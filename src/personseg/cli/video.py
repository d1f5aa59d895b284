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


#: VideoOptions' flags that ``live`` takes too (the rest are about files: batch, output kind, audio ...).
SMOOTHING = ("smooth", "smooth_strength", "stabilizer")


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    from personseg.video import VideoOptions

    parser = sub.add_parser(name, help=help_text, description=DESCRIPTION)
    parser.add_argument("input", metavar="IN", help="video file, or image-sequence glob / printf pattern")
    parser.add_argument("output", metavar="OUT", help="output file, or folder for --output-kind png-seq")
    parser.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    options.add_spec_options(parser, VideoOptions, "video", exclude=SMOOTHING)
    add_frame_options(parser)
    parser.set_defaults(func=run)


def add_frame_options(parser: argparse.ArgumentParser) -> None:
    """What happens to each frame (model, smoothing, post-processing, background): shared by video and live."""
    from personseg.video import VideoOptions

    options.add_spec_options(parser, VideoOptions, "temporal smoothing", only=SMOOTHING)
    options.add_model_option(parser)
    options.add_provider_option(parser)
    options.add_device_option(parser)
    options.add_threads_option(parser)
    options.add_photo_options(parser, video=True)


def video_options_from_args(args: argparse.Namespace, default_background=None):
    """The :class:`~personseg.video.VideoOptions` the parsed arguments describe (ValueError names the flag).

    Flags a command does not define (``live`` has no --batch or --output-kind) take their defaults;
    ``default_background`` is used when no ``--bg-*`` flag is given.
    """
    from personseg.video import VideoOptions

    return options.spec_from_args(
        VideoOptions,
        args,
        background=options.background_from_args(args, default_background),
        remove=options.remove_options_from_args(args),
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
