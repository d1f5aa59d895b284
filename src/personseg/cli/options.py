"""CLI options shared by several subcommands, each declared exactly once."""

from __future__ import annotations

import argparse


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m",
        "--model",
        default=None,
        help="model name (see 'personseg models'), or a path to a .onnx export or .pt checkpoint "
        "(default: the shipped default model)",
    )


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: all)")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=None, help="torch device: cpu, cuda, cuda:1 (default: cuda if present)"
    )


def add_data_option(
    parser: argparse.ArgumentParser, required: bool = False, help_text: str | None = None
) -> None:
    parser.add_argument(
        "--data",
        nargs="+",
        required=required,
        default=None,
        help=help_text or "dataset roots, each with images/ and masks/ (ROOT or ROOT:WEIGHT)",
    )
