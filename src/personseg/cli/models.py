"""``personseg models``: list the shipped inference models and the trainable architectures."""

from __future__ import annotations

import argparse
import importlib.util

#: the names personseg.models.registry.MODELS registers (a test keeps them equal); listed here so that
#: ``personseg models`` answers at once instead of importing torch, timm and smp
ARCHITECTURES = ("deeplabv3plus", "fpn", "smp_unet", "unet")


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personseg.inference.registry import SHIPPED_MODELS

    print("shipped models (personseg.load_model(NAME)):")
    for name, entry in SHIPPED_MODELS.items():
        print(f"  {name:20s} {entry.description}")
    try:
        has_torch = importlib.util.find_spec("torch") is not None
    except ImportError:  # a broken or blocked install counts as none
        has_torch = False
    if not has_torch:
        print("architectures for training: install personseg[train] to train (pip install 'personseg[train]')")
    else:
        print("architectures for training (personseg train --model NAME):")
        for name in ARCHITECTURES:
            print(f"  {name}")
    return 0
