"""Write a copy of a checkpoint that runs differently at inference: another input size or resize, the second look
at the people on or off (weights unchanged).

The v3 default was trained at 320x320 and scores better on the real-scene benchmark run at 384x384 with a second
pass on the crop around the people found; the shipped checkpoint is that copy, so `personseg export` and
`personseg.load_model` run it that way:

    python scripts/set_inference.py runs/personseg-default-v3-rotate/best.pt --input-size 384 384 --zoom \\
        --output checkpoints/personseg-default.pt --note "v3 (trained at 320), run at 384 with a second look"

``--two-stages SIZE`` is the fast tier's variant: the whole photo at SIZE x SIZE only to find the people, then the
crop around them at the input size (the export then takes any input size; personseg.inference.zoom).
``--orient`` turns a non-square input to each photo: the fast model at ``--input-size 256 224 --resize stretch
--orient`` takes a portrait photo at 256x224 and a landscape one at 224x256, for a seventh more pixels than a 224
square where a 256 square would take a third more (the export then takes both shapes).
``--square 224 1.25`` gives a near-square photo (long side under 1.25x the short) a 224x224 square instead.
"""

from __future__ import annotations

import argparse
import logging
import sys

from personseg.models.checkpoint import atomic_save, with_inference

#: The two stages as measured (docs/experiments.md, session 12-13): a box from a low threshold, grown by 10% and to
#: a square, the crop replacing the first pass inside it; the crop always runs (min_gain 1).
TWO_STAGES = {"min_gain": 1.0, "margin": 0.1, "weight": 1.0, "square": True, "threshold": 0.2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="the .pt checkpoint to copy")
    parser.add_argument("--input-size", nargs=2, type=int, default=None, metavar=("H", "W"))
    parser.add_argument(
        "--resize",
        choices=("letterbox", "stretch", "fit"),
        default=None,
        help="letterbox: the photo keeps its aspect, padded; stretch: it is resized to the input's shape; fit: each "
        "photo gets an input shape of its own (multiples of 32) within the input size's pixels, aspect kept",
    )
    zoom = parser.add_mutually_exclusive_group()
    zoom.add_argument(
        "--zoom",
        nargs="*",
        type=float,
        default=None,
        metavar="MIN_GAIN [MARGIN]",
        help="a second pass on the crop around the people found (personseg.inference.zoom); alone: min_gain 1.15, "
        "margin 0.1",
    )
    zoom.add_argument("--no-zoom", action="store_true", help="remove the second pass")
    zoom.add_argument(
        "--two-stages",
        type=int,
        default=None,
        metavar="SIZE",
        help="the fast tier's two stages: the whole photo at SIZE x SIZE only to find the people (threshold 0.2), "
        "then the square crop around them at the input size, which replaces it there (fading across a 10%% margin)",
    )
    parser.add_argument(
        "--guided-radius",
        type=int,
        default=None,
        metavar="R",
        help="the guided filter's radius (network-resolution pixels) when the probability is brought to full size; "
        "0: back to the default rule (1/64 of the input's shorter side)",
    )
    parser.add_argument(
        "--crop-size",
        type=int,
        default=None,
        metavar="S",
        help="with --zoom: the crop goes through the network at a shape of its own within S x S pixels (resize "
        "fit) instead of the input size",
    )
    parser.add_argument(
        "--zoom-weight",
        type=float,
        default=None,
        metavar="W",
        help="with --zoom: the crop's share of the probability inside its box, in (0, 1] (default 0.5: the mean of "
        "both passes; 1: the crop replaces the first pass there), fading to 0 across the margin",
    )
    turn = parser.add_mutually_exclusive_group()
    turn.add_argument(
        "--orient",
        action="store_true",
        help="a non-square --input-size is turned to each photo's orientation (256 224: a landscape photo goes in at "
        "224x256), for resize letterbox or stretch",
    )
    turn.add_argument("--no-orient", action="store_true", help="remove --orient")
    near = parser.add_mutually_exclusive_group()
    near.add_argument(
        "--square",
        nargs=2,
        type=float,
        default=None,
        metavar=("SIDE", "BELOW"),
        help="a photo whose long side is less than BELOW times its short side goes in at a SIDE x SIDE square "
        "instead of the input size (224 1.25: a near-square portrait is not squeezed into 256x192)",
    )
    near.add_argument("--no-square", action="store_true", help="remove --square")
    parser.add_argument("--output", required=True, help="the .pt to write")
    parser.add_argument("--note", default="", help="a line of provenance stored in the checkpoint's metadata")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.zoom is not None and len(args.zoom) > 2:
        parser.error("--zoom takes at most MIN_GAIN and MARGIN")
    if args.no_zoom:
        zoom_value: dict[str, float] | bool | None = False
    elif args.two_stages is not None:
        zoom_value = dict(TWO_STAGES, first_size=args.two_stages)
    elif args.zoom is None:
        zoom_value = None
    else:
        zoom_value = dict(zip(("min_gain", "margin"), args.zoom, strict=False)) or True
    for flag, key, value in (
        ("--crop-size", "crop_size", args.crop_size),
        ("--zoom-weight", "weight", args.zoom_weight),
    ):
        if value is not None:
            if args.zoom is None:
                parser.error(f"{flag} goes with --zoom")
            zoom_value = {**(zoom_value if isinstance(zoom_value, dict) else {}), key: value}
    orient = True if args.orient else False if args.no_orient else None
    square = False if args.no_square else None
    if args.square is not None:
        if args.square[0] != int(args.square[0]):
            parser.error(f"--square: SIDE must be a whole number of pixels, got {args.square[0]}")
        square = (int(args.square[0]), args.square[1])
    if (args.input_size, zoom_value, args.resize, args.guided_radius, orient, square) == (None,) * 6:
        parser.error(
            "nothing to change: give --input-size, --resize, --zoom, --no-zoom, --two-stages, --guided-radius, "
            "--orient or --square"
        )
    try:
        ckpt = with_inference(
            args.checkpoint, args.input_size, zoom_value, args.note, args.resize, args.guided_radius, orient, square
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    atomic_save(ckpt, args.output)
    meta = ckpt["meta"]
    size = "x".join(map(str, meta["input_size"]))
    radius = meta.get("guided_radius", "default")
    logging.info(
        "wrote %s: input %s (%s%s%s), zoom %s, guided radius %s",
        args.output,
        size,
        meta["resize"],
        ", oriented" if meta.get("orient") else "",
        ", near-square photos at {side}x{side} (aspect below {below})".format(**meta["square"])
        if meta.get("square")
        else "",
        meta.get("zoom", "off"),
        radius,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
