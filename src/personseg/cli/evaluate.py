"""``personseg evaluate``: Dice / IoU / pixel accuracy (+ boundary IoU, MAE) of a model at full resolution."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from personseg.cli.options import add_data_option, add_model_option, add_provider_option, add_threads_option


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a .pt checkpoint or .onnx export (same as --model)")
    add_model_option(parser)
    add_data_option(parser, required=True, help_text="folders with images/ and masks/ (each reported separately)")
    add_provider_option(parser)
    add_threads_option(parser)
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="evaluate only the fixed validation split of each folder (as in training)",
    )
    parser.add_argument("--limit", type=int, default=None, help="at most N images per folder")
    parser.add_argument("--skip-invalid", action="store_true", help="skip broken pairs instead of failing")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from personseg.data.folder import DatasetError, PairedFolder
    from personseg.data.split import split_stems
    from personseg.evaluation import evaluate_folder, pooled
    from personseg.inference.api import load_model

    try:
        model = load_model(args.checkpoint or args.model, providers=args.provider, threads=args.threads)
        folders = {}
        for root in args.data:
            root = Path(root)
            folder = PairedFolder(root, skip_invalid=args.skip_invalid)
            if args.val_fraction is not None:
                _, val = split_stems(root.name, folder.stems, args.val_fraction)
                folder = PairedFolder(root, stems=val, skip_invalid=True, check=False)
            folders[root.name or str(root)] = folder
    except (DatasetError, ValueError, FileNotFoundError) as exc:
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
    print(f"model: {model.source}")
    print(f"{'data':20s} {'images':>6s} {'IoU':>7s} {'Dice':>7s} {'PixAcc':>7s} {'BndIoU':>7s} {'MAE':>7s} {'ms':>7s}")
    for name, s in report.items():
        print(
            f"{name:20s} {s['images']:6d} {s['iou']:7.4f} {s['dice']:7.4f} {s['pixel_accuracy']:7.4f} "
            f"{s['boundary_iou']:7.4f} {s['mae']:7.4f} {s['ms_per_image']:7.1f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": model.source, "results": report}, indent=2))
    return 0
