"""``personseg train`` and ``python train.py``: every training option is a flag and a key of the YAML --config.

Multi-GPU / multi-node: run the same command under ``torchrun --nproc_per_node=N``.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from personseg.training.config import add_config_arguments

    add_config_arguments(parser)
    parser.set_defaults(func=run)


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Train a person-segmentation model on folders of images/ + masks/. Every option below is also "
        "a key of the YAML file given with --config (flags win). Multi-GPU: torchrun --nproc_per_node=N -m "
        "personseg train ...",
    )
    configure_parser(parser)


def run(args: argparse.Namespace) -> int:
    from personseg.data.folder import DatasetError
    from personseg.training.config import config_from_args
    from personseg.training.trainer import main

    try:
        cfg = config_from_args(args)
        result = main(cfg)
    except (DatasetError, ValueError, FileNotFoundError, KeyError) as exc:
        print(f"personseg train: {exc}", file=sys.stderr)
        return 2
    last = result["last"]
    if last:
        print(
            f"done: epoch {last['epoch']} val IoU {last['val_iou']:.4f} (best {result['best_iou']:.4f}); "
            f"checkpoints in {result['output']}"
        )
    return 0
