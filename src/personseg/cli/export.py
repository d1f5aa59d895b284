"""``personseg export``: a training checkpoint -> the ONNX file ``personseg remove --model`` loads."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Export a .pt checkpoint to ONNX (input 'image' N x 3 x H x W normalized, output 'prob'), "
        "with the checkpoint's preprocessing metadata embedded; checked against PyTorch on a random batch.",
    )
    parser.add_argument("--checkpoint", required=True, help="the .pt checkpoint written by personseg train")
    parser.add_argument("--output", required=True, help="the .onnx file to write")
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="network input size (default: the checkpoint's input_size)",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    parser.add_argument(
        "--dynamo", action="store_true", help="use torch's dynamo exporter instead of the TorchScript one"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="write an int8-quantized model (about 2.4x faster on CPU), calibrated on --calibration photos",
    )
    parser.add_argument(
        "--calibration",
        nargs="+",
        default=[],
        metavar="DIR",
        help="folders of photos (or with images/) to calibrate --int8 on",
    )
    parser.add_argument(
        "--calibration-images", type=int, default=100, metavar="N", help="photos used for calibration (default: 100)"
    )
    parser.add_argument(
        "--calibration-val-fraction",
        type=float,
        default=None,
        metavar="F",
        help="leave each folder's fixed validation split (as in training, e.g. 0.1) out of calibration",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from personseg.export import export_onnx
    except ImportError as exc:
        print(f"personseg export: needs torch and onnx: pip install 'personseg[train]' ({exc})", file=sys.stderr)
        return 2
    if args.int8 and not args.calibration:
        print("personseg export: --int8 needs --calibration DIR (photos to calibrate on)", file=sys.stderr)
        return 2
    try:
        if args.int8:
            path = _export_int8(args)
        else:
            path = export_onnx(args.checkpoint, args.output, args.input_size, opset=args.opset, dynamo=args.dynamo)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        print(f"personseg export: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def _export_int8(args: argparse.Namespace):
    """Export in float to a temporary file, then quantize that into ``args.output``."""
    import tempfile
    from pathlib import Path

    from personseg.export import calibration_images, export_onnx, quantize_int8

    images = calibration_images(args.calibration, args.calibration_images, args.calibration_val_fraction)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".export.") as work:
        fp32 = export_onnx(
            args.checkpoint, Path(work) / "fp32.onnx", args.input_size, opset=args.opset, dynamo=args.dynamo
        )
        return quantize_int8(fp32, output, images)
