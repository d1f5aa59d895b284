"""``personseg models``: list the shipped inference models and the trainable architectures."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personseg.inference.registry import SHIPPED_MODELS

    print("shipped models (personseg.load_model(NAME)):")
    for name, entry in SHIPPED_MODELS.items():
        print(f"  {name:20s} {entry.description}")
    try:
        from personseg.models import list_models
    except ImportError:
        print("architectures for training: install personseg[train] to list them")
    else:
        print("architectures for training (personseg train --model NAME):")
        for name in list_models():
            print(f"  {name}")
    return 0
