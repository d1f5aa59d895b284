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


def add_data_option(parser: argparse.ArgumentParser, required: bool = False, help_text: str | None = None) -> None:
    parser.add_argument(
        "--data",
        nargs="+",
        required=required,
        default=None,
        help=help_text or "dataset roots, each with images/ and masks/ (ROOT or ROOT:WEIGHT)",
    )


# --- inference: photo/video/server commands share these ----------------------------------------------------


def add_provider_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider",
        default=None,
        help="ONNX Runtime execution provider(s), comma-separated: cpu, cuda, coreml, dml or a full name "
        "like CUDAExecutionProvider (default: the best available; the choice is logged with -v)",
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        help="torch device for a .pt checkpoint model: cpu, cuda, cuda:1 (default: cuda if present); "
        "shipped and .onnx models run on --provider",
    )


def _pixel_count(text: str) -> int | None:
    value = text.strip().lower()
    if value in ("0", "none", "off"):
        return None
    try:
        number = float(value[:-1]) * 1e6 if value.endswith("m") else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pixel count (like 100M or 100000000)") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the pixel limit must be > 0 (0 or 'none' for no limit)")
    return int(number)


def add_max_pixels_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-pixels",
        type=_pixel_count,
        default=100_000_000,
        metavar="N",
        help="refuse images larger than N pixels, checked before decoding (decompression bombs); "
        "accepts 100M; 'none' for no limit (default: 100M)",
    )


def _memory_size(text: str) -> int | None:
    from personseg.inference.budget import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_max_memory_option(parser: argparse.ArgumentParser, default: int | None = None) -> None:
    """``--max-memory``: the working-memory budget per image (see :mod:`personseg.inference.budget`)."""
    from personseg.inference.budget import DEFAULT_MAX_MEMORY, describe

    default = DEFAULT_MAX_MEMORY if default is None else default
    parser.add_argument(
        "--max-memory",
        type=_memory_size,
        default=default,
        metavar="SIZE",
        help="working memory per image, judged from the header before decoding: a larger image is decoded "
        "reduced and processed (and written) at the largest size that fits, with a warning; one that cannot "
        f"even be decoded within it is refused. Like 1.5G or 512M; 'none' for no budget (default: {describe(default)})",
    )


def add_subject_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--subject all|main``: photos, video and live (through :func:`add_postprocess_options`)."""
    from personseg.inference.subject import SUBJECT_MODES

    parser.add_argument(
        "--subject",
        choices=SUBJECT_MODES,
        default="all",
        help="all: every person; main: only the most prominent person (largest x most central x sharpest) and "
        "anyone touching them, dropping bystanders and audiences; in a video the same person stays chosen "
        "from frame to frame, even when someone bigger walks past (default: %(default)s)",
    )


def add_postprocess_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("mask post-processing")
    add_subject_option(group)
    group.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="person/background cut in (0, 1) for --hard, --keep-largest, --fill-holes and --crop "
        "(default: the model's own)",
    )
    group.add_argument("--hard", action="store_true", help="hard 0/1 mask instead of a soft alpha")
    group.add_argument(
        "--edge-cutoff",
        type=float,
        default=0.1,
        metavar="C",
        help="soft alpha below C becomes 0 and above 1-C becomes 1, clearing faint fog at the edge; "
        "0 keeps the raw probability (default: 0.1)",
    )
    group.add_argument(
        "--keep-largest",
        type=int,
        default=0,
        metavar="K",
        help="keep only the K largest people (connected regions); 0 keeps all (default: 0)",
    )
    group.add_argument(
        "--fill-holes",
        type=float,
        nargs="?",
        const=0.01,
        default=0.0,
        metavar="FRACTION",
        help="fill holes in the mask smaller than FRACTION of the image area (default when given: 0.01)",
    )
    group.add_argument("--feather", type=float, default=0.0, metavar="PX", help="blur the mask edge by PX pixels")
    group.add_argument(
        "--matting",
        action="store_true",
        help="alpha matting around the edge for hair (slow; needs: pip install 'personseg[matting]')",
    )
    group.add_argument(
        "--foreground",
        choices=("blur", "ml", "none"),
        default="blur",
        help="foreground colour estimation so cut-outs carry no old-background halo: blur (fast), "
        "ml (pymatting, slower) or none (default: %(default)s)",
    )


def _color(text: str) -> tuple[int, ...]:
    from personseg.inference.compose import parse_color

    try:
        return parse_color(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_background_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("background replacement (one of)").add_mutually_exclusive_group()
    group.add_argument(
        "--bg-color",
        type=_color,
        default=None,
        metavar="COLOR",
        help="put the person on this colour: R,G,B[,A], #RRGGBB[AA] or a name",
    )
    group.add_argument(
        "--bg-image", default=None, metavar="PATH", help="put the person on this image (scaled to cover)"
    )
    group.add_argument(
        "--bg-blur",
        type=float,
        nargs="?",
        const=15.0,
        default=None,
        metavar="SIGMA",
        help="keep the background but blur it by SIGMA pixels (default when given: 15)",
    )


def add_crop_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--crop", action="store_true", help="crop the outputs to the people's bounding box")
    parser.add_argument(
        "--crop-margin",
        type=float,
        default=0.05,
        metavar="FRACTION",
        help="margin around --crop, as a fraction of the box size (default: 0.05)",
    )


def remove_options_from_args(args: argparse.Namespace):
    """The :class:`~personseg.inference.remove.RemoveOptions` the options above describe."""
    from personseg.inference.remove import RemoveOptions

    return RemoveOptions(
        soft=not args.hard,
        edge_cutoff=args.edge_cutoff,
        threshold=args.threshold,
        keep_largest=args.keep_largest,
        fill_holes=args.fill_holes,
        feather=args.feather,
        matting=args.matting,
        foreground=args.foreground,
        crop=getattr(args, "crop", False),
        crop_margin=getattr(args, "crop_margin", 0.05),
        subject=args.subject,
    )


def load_model_from_args(args: argparse.Namespace):
    """``personseg.load_model`` with --model, --provider, --device and --threads."""
    from personseg.inference.api import load_model

    device = getattr(args, "device", None)  # commands without .pt support have no --device
    return load_model(args.model, providers=args.provider, threads=args.threads, device=device)
