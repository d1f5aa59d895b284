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


def _dest(field) -> str:
    return field.spec.flag_for(field.name).lstrip("-").replace("-", "_")


def _converter(field):
    """``type=`` for argparse: the text as the field's value. Ranges are checked when the options are built
    (:func:`spec_from_args`), so the error is one line naming the flag, as for every other usage error."""
    base = field.spec.parse or field.kind

    def convert(text: str):
        try:
            return base(text)
        except ValueError as exc:
            what = "a whole number" if field.kind is int else "a number"
            raise argparse.ArgumentTypeError(str(exc) if field.spec.parse else f"not {what}: {text!r}") from None

    convert.__name__ = (field.kind or str).__name__  # argparse names the type in its own messages
    return convert


def add_spec_options(
    parser: argparse.ArgumentParser,
    cls: type,
    title: str,
    exclude: tuple[str, ...] = (),
    exclusive: bool = False,
    only: tuple[str, ...] | None = None,
) -> None:
    """One flag per spec'd field of ``cls`` (:mod:`personseg.inference.options`), in a group titled ``title``
    (fields in ``exclude`` left out, or just those in ``only``); ``exclusive``: at most one may be given."""
    from personseg.inference.options import option_fields

    group = parser.add_argument_group(title)
    if exclusive:
        group = group.add_mutually_exclusive_group()
    for field in option_fields(cls):
        spec = field.spec
        if spec.flag_for(field.name) is None or field.name in exclude or (only is not None and field.name not in only):
            continue
        kwargs: dict = {"dest": _dest(field), "help": spec.flag_help or spec.help}
        if field.kind is bool:
            kwargs.update(action="store_true", default=False)
        else:
            kwargs.update(default=field.default, metavar=spec.metavar)
            if spec.choices is not None:
                kwargs.update(choices=spec.choices, metavar=None)
            elif field.kind is not None or spec.parse is not None:
                kwargs["type"] = _converter(field)
            if spec.const is not None:
                kwargs.update(nargs="?", const=spec.const)
            if field.default is not None:
                kwargs["help"] += " (default: %(default)s)"
        group.add_argument(spec.flag_for(field.name), **kwargs)


def spec_from_args(cls: type, args: argparse.Namespace, **overrides):
    """``cls`` built from the flags :func:`add_spec_options` added (fields without a flag here keep their
    default); an error names the flag the user typed."""
    from personseg.inference.options import OptionError, option_fields

    values, flags = {}, {}
    for field in option_fields(cls):
        flag = field.spec.flag_for(field.name)
        if flag is None or not hasattr(args, _dest(field)):
            continue
        value = getattr(args, _dest(field))
        values[field.name] = (not value) if field.spec.invert else value
        flags[field.name] = flag
    values.update(overrides)
    try:
        return cls(**values)
    except OptionError as exc:
        raise ValueError(exc.named(flags)) from None


def add_photo_options(parser: argparse.ArgumentParser, video: bool = False) -> None:
    """The mask post-processing and background flags of photos, or (``video``) of video and live: no crop,
    and a video may be a background."""
    from personseg.inference.options import Background, RemoveOptions

    add_spec_options(parser, RemoveOptions, "mask post-processing", exclude=("crop", "crop_margin") if video else ())
    add_spec_options(parser, Background, "background replacement (one of)", () if video else ("video",), exclusive=True)
    if video:  # a video's edge is tighter than a photo's (see VIDEO_EDGE_CUTOFF)
        from personseg.video.pipeline import VIDEO_EDGE_CUTOFF

        parser.set_defaults(edge_cutoff=VIDEO_EDGE_CUTOFF)


def remove_options_from_args(args: argparse.Namespace):
    """The :class:`~personseg.inference.options.RemoveOptions` the flags describe."""
    from personseg.inference.options import RemoveOptions

    return spec_from_args(RemoveOptions, args)


def background_from_args(args: argparse.Namespace, default=None):
    """The :class:`~personseg.inference.options.Background` the ``--bg-*`` flags describe (``default`` if none)."""
    from personseg.inference.options import Background

    background = spec_from_args(Background, args)
    return background if background.kind is not None or default is None else default


def load_model_from_args(args: argparse.Namespace):
    """``personseg.load_model`` with --model, --provider, --device and --threads."""
    from personseg.inference.api import load_model

    device = getattr(args, "device", None)  # commands without .pt support have no --device
    return load_model(args.model, providers=args.provider, threads=args.threads, device=device)
