"""The ``personseg`` command: one parser, one subcommand module per job.

Each module in :data:`SUBCOMMANDS` defines ``add_parser(subparsers)`` (which registers its parser and sets
``func``) ; shared options live once in :mod:`personseg.cli.options`. Modules are imported only when
their subcommand runs, so ``personseg remove`` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from personseg import __version__

#: subcommand name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "remove": ("personseg.cli.remove", "remove the background of photos"),
    "train": ("personseg.cli.train", "train a segmentation model"),
    "evaluate": ("personseg.cli.evaluate", "evaluate a checkpoint or ONNX model on images/ + masks/"),
    "export": ("personseg.cli.export", "export a checkpoint to ONNX"),
    "data": ("personseg.cli.data", "download and convert public person datasets"),
    "models": ("personseg.cli.models", "list the registered models"),
    "video": ("personseg.cli.video", "remove or replace the background of a video"),
    "live": ("personseg.cli.live", "replace the background of a webcam or stream, live"),
    "serve": ("personseg.cli.serve", "run the HTTP API (and the web UI at /ui)"),
    "ui": ("personseg.cli.ui", "run the web UI alone"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="personseg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"personseg {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported; the others get a stub parser for --help listings.
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    for name, (module, help_text) in SUBCOMMANDS.items():
        if name == chosen:
            importlib.import_module(module).add_parser(sub, name, help_text)
            # -v works after the subcommand too (e.g. `python train.py ... -v`).
            sub.choices[name].add_argument(
                "-v",
                "--verbose",
                action="count",
                default=argparse.SUPPRESS,
                help="more logging (-vv for debug)",
            )
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * min(verbosity + 1, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None or not hasattr(args, "func"):
        parser.print_help()
        return 2
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("personseg: interrupted", file=sys.stderr)
        return 130
