"""``personseg evaluate``: IoU / Dice / boundary IoU / MAE of a model at full resolution, per source and macro-averaged.

Runs on the inference-only install (no torch); ``--split-config`` needs PyYAML.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from personseg.cli.options import (
    add_data_option,
    add_device_option,
    add_model_option,
    add_provider_option,
    add_threads_option,
)


def add_split_options(parser: argparse.ArgumentParser) -> None:
    """Which images to score: a training config's validation split, or a plain hash split (also used by
    benchmarks/compare_models.py, so both read the split the same way)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--split-config",
        type=Path,
        default=None,
        metavar="CONFIG.yaml",
        help="score the validation split a training config defines (val_patterns, val_fraction) and macro-average "
        "its select_sources, exactly as training does",
    )
    group.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="score only the fixed hash validation split of each folder (without val_patterns)",
    )
    parser.add_argument(
        "--main-subject",
        nargs="*",
        default=None,
        metavar="SOURCE/STEM_GLOB",
        help="sequences where only the main subject is labelled, scored apart from the all-person figures "
        "(default: davis_people/dance-jump_*; none to give none)",
    )


def split_from_args(args: argparse.Namespace):
    """``(SplitConfig, main-subject patterns)`` from :func:`add_split_options`' flags."""
    from personseg.evaluation import MAIN_SUBJECT, SplitConfig, read_split_config

    split = read_split_config(args.split_config) if args.split_config else SplitConfig(val_fraction=args.val_fraction)
    return split, tuple(MAIN_SUBJECT if args.main_subject is None else args.main_subject)


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a .pt checkpoint or .onnx export (same as --model)")
    add_model_option(parser)
    add_data_option(parser, required=True, help_text="folders with images/ and masks/ (each reported separately)")
    add_provider_option(parser)
    add_device_option(parser)
    add_threads_option(parser)
    add_split_options(parser)
    parser.add_argument("--limit", type=int, default=None, help="at most N images per folder")
    parser.add_argument("--skip-invalid", action="store_true", help="skip broken pairs instead of failing")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.set_defaults(func=run)


def format_table(report: dict[str, dict[str, float]]) -> str:
    """One line per source: images, IoU, pooled IoU, Dice, pixel accuracy, boundary IoU, MAE, ms."""
    keys = ("iou", "pooled_iou", "dice", "pixel_accuracy", "boundary_iou", "mae")
    head = ("images", "IoU", "pooled", "Dice", "PixAcc", "BndIoU", "MAE", "ms")
    lines = [f"{'data':28s} " + " ".join(f"{h:>7s}" for h in head)]
    for name, s in report.items():
        figures = " ".join(f"{s[k]:7.4f}" for k in keys)
        lines.append(f"{name:28s} {s['images']:7d} {figures} {s['ms_per_image']:7.1f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from personseg.data.folder import DatasetError
    from personseg.evaluation import evaluate_folder, evaluation_folders, macro_average, pooled
    from personseg.inference.api import load_model

    try:
        split, main_subject = split_from_args(args)
        model = load_model(
            args.checkpoint or args.model, providers=args.provider, threads=args.threads, device=args.device
        )
        folders = evaluation_folders(args.data, split, main_subject, skip_invalid=args.skip_invalid)
        if split.select_sources:  # a macro source without --data fails now, not after the whole run
            macro_average({name: {} for name in folders}, split.select_sources, keys=())
    except (DatasetError, ValueError, FileNotFoundError, ImportError) as exc:
        print(f"personseg evaluate: {exc}", file=sys.stderr)
        return 2
    results = {
        name: evaluate_folder(
            model.predict,
            folder,
            model.threshold,
            args.limit,
            progress=lambda it, n=name: tqdm(it, desc=n, leave=False),
        )
        for name, folder in folders.items()
    }
    report = {name: r.summary() for name, r in results.items()}
    if len(results) > 1:
        report["all"] = pooled(results)
    macro = macro_average(report, split.select_sources) if split.select_sources else None
    print(f"model: {model.source}")
    print(format_table(report))
    if macro:
        print(
            f"macro average over {', '.join(split.select_sources)}: "
            f"IoU {macro['iou']:.4f}, boundary IoU {macro['boundary_iou']:.4f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = {"model": model.source, "results": report}
        if macro:
            out["macro"] = {"sources": list(split.select_sources), **macro}
        args.json.write_text(json.dumps(out, indent=2))
    return 0
