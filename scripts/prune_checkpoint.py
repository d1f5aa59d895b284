"""Narrow a trained checkpoint's encoder blocks (fewer hidden channels), refit on training photos, no training.

The network is run as its checkpoint says it runs (input size, resize, turned to the photo) on photos from the
training split of the given folders, and each inverted-residual block keeps the given fraction of its hidden
channels, its projection refit by least squares to answer as the whole network did (personseg.models.prune):

    python scripts/prune_checkpoint.py checkpoints/personseg-fast.pt --keep 5:0.6 6:0.6 \\
        --data ../shared/data/davis_people ../shared/data/coco_train ../shared/data/ccp \\
        --split-config configs/personseg-default-v2.yaml --output runs/fast-narrow.pt

``--keep 0.8`` narrows every block; ``--keep STAGE:FRACTION STAGE.BLOCK:FRACTION ...`` only those named (a
block's own fraction before its stage's). The checkpoint written
rebuilds the narrowed network (``hidden_widths`` in its model config) and exports like any other.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("prune_checkpoint")


def parse_keep(values: list[str]) -> float | dict[int | str, float]:
    """``["0.8"]`` -> 0.8; ``["5:0.6", "5.4:0.5"]`` -> ``{5: 0.6, "5.4": 0.5}`` (a stage, or one block)."""
    keep: dict[int | str, float] = {}
    for value in values:
        where, sep, fraction = value.rpartition(":")
        try:
            number = float(fraction)
        except ValueError:
            number = None
        parts = where.split(".")
        if number is None or (sep and not (len(parts) <= 2 and all(p.isdigit() for p in parts))):
            raise ValueError(f"--keep {value!r}: give one FRACTION, or STAGE:FRACTION / STAGE.BLOCK:FRACTION")
        if not sep:
            if len(values) > 1:
                raise ValueError(f"--keep {value!r}: a FRACTION for every block goes alone")
            return number
        keep[int(where) if where.isdigit() else where] = number
    return keep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="the .pt checkpoint to narrow (an smp network over an EfficientNet)")
    parser.add_argument("--keep", nargs="+", required=True, metavar="FRACTION | STAGE[.BLOCK]:FRACTION")
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR", help="folders of photos (or with images/)")
    parser.add_argument("--images", type=int, default=320, help="photos to refit on (default: 320)")
    parser.add_argument(
        "--split-config",
        default=None,
        metavar="CONFIG.yaml",
        help="a training config whose validation split (val_patterns, val_fraction) is left out; default: the "
        "0.1 hash split",
    )
    parser.add_argument("--multiple", type=int, default=8, help="channels kept are a multiple of this (default 8)")
    parser.add_argument(
        "--no-mend-residual",
        action="store_true",
        help="refit each block to answer only as its whole self would, not also for what the narrowed blocks "
        "before it moved its input by",
    )
    parser.add_argument("--output", required=True, help="the .pt to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        keep = parse_keep(args.keep)
        return _run(args, keep)
    except (ValueError, OSError, KeyError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, keep: float | dict[int, float]) -> int:
    import torch

    from personseg.export.quantize import calibration_images
    from personseg.inference.api import TorchSegmenter
    from personseg.inference.io import read_image
    from personseg.models.checkpoint import atomic_save, make_checkpoint, read_checkpoint
    from personseg.models.prune import prune_hidden_channels

    patterns, val_fraction = [], 0.1
    if args.split_config:
        from personseg.training.config import TrainConfig

        cfg = TrainConfig.from_yaml(args.split_config)
        patterns, val_fraction = list(cfg.val_patterns), cfg.val_fraction
    source = read_checkpoint(args.checkpoint)
    segmenter = TorchSegmenter(Path(args.checkpoint), "cpu", None)
    photos = calibration_images(args.data, args.images, val_fraction, patterns)
    inputs = []
    for path in photos:
        batch, _ = segmenter.preprocess(read_image(path).rgb)
        inputs.append(torch.from_numpy(np.ascontiguousarray(batch))[None])
    log.info("refitting on %d training photos at the checkpoint's own input", len(inputs))
    model = segmenter.model
    widths = prune_hidden_channels(model, inputs, keep, multiple=args.multiple, mend_residual=not args.no_mend_residual)
    meta = dict(source["meta"])
    meta["note"] = (
        f"{meta.get('note', '')}; hidden channels narrowed (scripts/prune_checkpoint.py --keep {' '.join(args.keep)}, "
        f"{len(inputs)} photos, {len(widths)} blocks)"
    ).lstrip("; ")
    atomic_save(make_checkpoint(model, meta), args.output)
    log.info("wrote %s: %s", args.output, model.config["hidden_widths"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
