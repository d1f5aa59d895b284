"""The ``personseg`` command: find people in photos and videos, remove or replace the background, train models.

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


#: subcommand -> the pip extra its imports come from (the inference-only install lacks them)
EXTRAS: dict[str, str] = {
    "train": "train",
    "export": "train",
    "video": "video",
    "live": "live",
    "serve": "serve",
    "ui": "ui",
}

#: subcommands whose progress is their log (epoch lines, downloads): INFO by default, the rest only warn
CHATTY = ("train", "data")


class MissingExtra(Exception):
    """A subcommand needs a package of an extra that is not installed."""


#: modules only the [train] extra brings, whichever command needs them (a .pt model needs torch anywhere)
TRAIN_MODULES = ("torch", "torchvision", "yaml", "albumentations", "timm", "segmentation_models_pytorch")


def missing_extra_message(command: str, exc: ModuleNotFoundError) -> str:
    """One line naming the extra that brings the missing module (the one place that knows the mapping)."""
    top = (exc.name or "").split(".")[0]
    extra = "train" if top in TRAIN_MODULES else EXTRAS.get(command)
    module = exc.name or str(exc)
    if extra is None:
        return f"personseg {command}: missing Python module {module!r} ({exc})"
    return (
        f"personseg {command}: needs the [{extra}] extra (no module named {module!r}): pip install 'personseg[{extra}]'"
    )


def _add_verbose_option(parser: argparse.ArgumentParser, default: object) -> None:
    """``-v/--verbose``, declared once for the top-level parser and the chosen subcommand's."""
    parser.add_argument("-v", "--verbose", action="count", default=default, help="more logging (-vv for debug)")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="personseg",
        description="Find the people in photos and videos, remove or replace the background; train, evaluate "
        "and export the models that do it. 'personseg COMMAND --help' for each command.",
    )
    parser.add_argument("--version", action="version", version=f"personseg {__version__}")
    _add_verbose_option(parser, default=0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported; the others get a stub parser for --help listings.
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    for name, (module, help_text) in SUBCOMMANDS.items():
        if name == chosen:
            try:
                importlib.import_module(module).add_parser(sub, name, help_text)
            except ModuleNotFoundError as exc:
                raise MissingExtra(missing_extra_message(name, exc)) from None
            # -v works after the subcommand too (e.g. `python train.py ... -v`); SUPPRESS keeps a -v given
            # before the subcommand when none follows it.
            _add_verbose_option(sub.choices[name], default=argparse.SUPPRESS)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def log_level(command: str | None, verbosity: int, quiet: bool = False) -> int:
    """WARNING by default (results and problems only), INFO with -v, DEBUG with -vv; ``train`` and ``data``
    report progress at INFO unless -q."""
    if quiet:
        return logging.WARNING
    base = 1 if command in CHATTY else 0
    return (logging.WARNING, logging.INFO, logging.DEBUG)[min(base + verbosity, 2)]


def setup_logging(level: int) -> None:
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    # Third-party libraries log at INFO about their internals (quantization scales, HTTP internals).
    for name in ("onnxruntime", "PIL", "matplotlib", "httpx", "urllib3"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(argv)
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None or not hasattr(args, "func"):
        parser.print_help()
        return 2
    setup_logging(log_level(args.command, args.verbose, getattr(args, "quiet", False)))
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:
        print(missing_extra_message(args.command, exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("personseg: interrupted", file=sys.stderr)
        return 130
