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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from personseg.export import export_onnx
    except ImportError as exc:
        print(f"personseg export: needs torch and onnx: pip install 'personseg[train]' ({exc})", file=sys.stderr)
        return 2
    try:
        path = export_onnx(args.checkpoint, args.output, args.input_size, opset=args.opset, dynamo=args.dynamo)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        print(f"personseg export: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
