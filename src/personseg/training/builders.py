"""Build datasets, loaders, model, optimizer and scheduler from a TrainConfig."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from personseg.data.beside import BesideObjects
from personseg.data.composite import Compositor, foregrounds_from_pairs, load_backgrounds, load_cutouts
from personseg.data.folder import DatasetError, PairedFolder
from personseg.data.mixture import EvalDataset, TrainMixture
from personseg.data.repair import repair_backdrop_mask
from personseg.data.split import split_source
from personseg.data.transforms import composite_transform, eval_transform, train_transform
from personseg.data.zoom import PersonCrops
from personseg.models import SegmentationModel, create_model, read_checkpoint
from personseg.training.config import TrainConfig, split_matte_entry
from personseg.training.distributed import DistInfo
from personseg.training.prior import adapt_input_channels

log = logging.getLogger(__name__)


def parse_root(spec: str) -> tuple[Path, float]:
    """``ROOT`` or ``ROOT:WEIGHT``."""
    root, sep, weight = spec.rpartition(":")
    if sep and root and weight.replace(".", "", 1).isdigit():
        return Path(root), float(weight)
    return Path(spec), 1.0


def source_name(root: Path) -> str:
    return root.name or str(root)


def boundary_matte_dirs(cfg: TrainConfig) -> dict[Path, Path]:
    """``cfg.boundary_mattes`` as {resolved --data root: matte folder}; a root not in ``cfg.data`` is an error."""
    roots = {parse_root(spec)[0].resolve() for spec in cfg.data}
    out = {}
    for entry in cfg.boundary_mattes:
        root, mattes = split_matte_entry(entry)
        if Path(root).resolve() not in roots:
            raise DatasetError(f"--boundary-mattes {entry!r}: {root} is not one of the --data roots")
        out[Path(root).resolve()] = Path(mattes).expanduser()
    return out


def build_datasets(cfg: TrainConfig, train_size: int | None = None) -> tuple[TrainMixture, dict[str, EvalDataset]]:
    """The training mixture and one validation dataset per source (so weaknesses show per source).

    ``train_size``: make training samples at this size instead of ``cfg.input_size`` (a distillation teacher's;
    the trainer shrinks them for the student). Validation stays at ``cfg.input_size``.
    """
    train_size = train_size or cfg.input_size
    cache = cfg.cache_max_side or None
    train_sources: list[PairedFolder | PersonCrops | Compositor] = []
    weights: list[float] = []
    val_sets: dict[str, EvalDataset] = {}
    matte_roots = {Path(p).resolve() for p in cfg.matte_data}
    repair_roots = {Path(p).resolve() for p in cfg.repair_backdrop}
    matte_dirs = boundary_matte_dirs(cfg)
    zoom_roots = {Path(p).resolve() for p in cfg.zoom_data}
    mattes: list[PairedFolder] = []
    evaluate = eval_transform(cfg.input_size, cfg.resize)
    for spec in cfg.data:
        root, weight = parse_root(spec)
        if not root.is_dir():
            raise DatasetError(
                f"{root}: no such dataset folder (expected {root}/images and {root}/masks; "
                "get one with 'python scripts/download_dataset.py' or pass --data)"
            )
        folder = PairedFolder(root, skip_invalid=cfg.skip_invalid, check=True)
        stems = folder.stems
        if cfg.val_data:
            train_stems, val_stems = stems, []
        else:
            train_stems, val_stems = split_source(source_name(root), stems, cfg.val_fraction, cfg.val_patterns)
        if not train_stems:
            raise DatasetError(f"{root}: every pair fell into the validation split; lower --val-fraction")
        # Mend training labels only: validation keeps the dataset's own masks so figures stay comparable.
        fix = repair_backdrop_mask if root.resolve() in repair_roots else None
        matte_dir = matte_dirs.get(root.resolve())
        train = PairedFolder(
            root,
            stems=train_stems,
            skip_invalid=True,
            check=False,
            cache_max_side=cache,
            mask_fix=fix,
            mattes=matte_dir,
        )
        if matte_dir is not None and cache:
            log.info("%s: outlines from %s: %s", root, matte_dir, train.matte_counts)
        if weight > 0:
            train_sources.append(PersonCrops(train) if root.resolve() in zoom_roots else train)
            weights.append(weight)
        if root.resolve() in matte_roots:
            mattes.append(train)
        if val_stems:
            val_sets[source_name(root)] = EvalDataset(
                PairedFolder(root, stems=val_stems, skip_invalid=True, check=False, cache_max_side=cache),
                evaluate,
            )
    for spec in cfg.val_data:
        root, _ = parse_root(spec)
        val_sets[source_name(root)] = EvalDataset(
            PairedFolder(root, skip_invalid=cfg.skip_invalid, cache_max_side=cache), evaluate
        )
    if not val_sets:
        raise DatasetError("no validation images: raise --val-fraction or pass --val-data")
    wanted = cfg.composite_weight > 0 or cfg.beside_objects > 0
    backgrounds = [bg for d in cfg.backgrounds for bg in load_backgrounds(d)] if wanted else []
    if cfg.composite_weight > 0:
        cutouts = [fg for d in cfg.cutouts for fg in load_cutouts(d)]
        matte_fgs = [fg for folder in mattes for fg in foregrounds_from_pairs(folder)]
        # Give the (few, full-body, varied) cut-outs as much weight as the (many, studio) mattes.
        repeat = max(1, round(len(matte_fgs) / len(cutouts))) if cutouts and matte_fgs else 1
        foregrounds = cutouts * repeat + matte_fgs
        if not foregrounds or not backgrounds:
            raise DatasetError("--composite-weight > 0 needs --cutouts or --matte-data, and --backgrounds")
        compositor = Compositor(
            foregrounds,
            backgrounds,
            train_size,
            pattern_prob=cfg.pattern_backgrounds,
            pattern_kinds=cfg.pattern_kinds,
            rotate_prob=cfg.rotate_people,
        )
        train_sources.append(compositor)
        weights.append(cfg.composite_weight)
        log.info("compositing: %d foregrounds, %d backgrounds", len(foregrounds), len(backgrounds))
    n_pairs = sum(len(s) for s in train_sources if not isinstance(s, Compositor))
    length = cfg.samples_per_epoch or max(n_pairs, cfg.batch_size)
    mixture = TrainMixture(
        train_sources,
        weights,
        length,
        pair_transform=train_transform(train_size, cfg.letterbox_prob, cfg.aug_strength, cfg.resize),
        composite_transform=composite_transform(cfg.aug_strength),
        seed=cfg.seed,
        objects=BesideObjects(
            backgrounds, cfg.beside_objects, cfg.pattern_kinds, large=cfg.beside_large, cushions=cfg.beside_cushions
        )
        if cfg.beside_objects
        else None,
    )
    return mixture, val_sets


def build_loaders(
    cfg: TrainConfig, train: TrainMixture, val_sets: dict[str, Dataset], info: DistInfo, pin: bool
) -> tuple[DataLoader, dict[str, DataLoader]]:
    common = {"num_workers": cfg.workers, "pin_memory": pin}
    sampler = (
        DistributedSampler(train, info.world_size, info.rank, shuffle=True, seed=cfg.seed) if info.enabled else None
    )
    # Not persistent: a persistent worker keeps the copy of the mixture it got at the first epoch, so
    # set_epoch never reached it and every epoch drew the same samples (until session 6). A fresh worker per
    # epoch (a fork on Linux: cheap, the cached images are shared copy-on-write) sees the current epoch.
    train_loader = DataLoader(
        train,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=len(train) >= cfg.batch_size * 2,
        persistent_workers=False,
        **common,
    )
    val_loaders = {}
    for name, ds in val_sets.items():
        # Shard validation by stride (no padding duplicates), so reduced metrics are exact.
        shard = Subset(ds, range(info.rank, len(ds), info.world_size)) if info.enabled else ds
        # Not persistent either: each living worker is a fork of a process whose image cache (up to ~9 GB with
        # cache_max_side 640) it slowly copies as Python touches the objects; one persistent worker per source
        # (7 sources) filled the 24 GB machine and the run was killed for memory (session 10).
        val_loaders[name] = DataLoader(
            shard, batch_size=cfg.batch_size, shuffle=False, persistent_workers=False, **common
        )
    return train_loader, val_loaders


def build_model(cfg: TrainConfig) -> SegmentationModel:
    return create_model(cfg.arch, **cfg.model_kwargs())


def init_weights(model: torch.nn.Module, path: str, partial: bool = False, log_it: bool = True) -> int:
    """Load ``path``'s weights into ``model`` (``--init-from``) and return how many tensors were taken.

    A 3-channel checkpoint fits a temporal model (``adapt_input_channels``). With ``partial`` only the tensors
    whose name and shape match are taken, e.g. a trained encoder under a new decoder; it is an error when none
    match, since then the checkpoint is not a relative of the model at all."""
    ckpt = read_checkpoint(path)
    state = adapt_input_channels(ckpt["state_dict"], model)
    if not partial:
        theirs = ckpt["model"]["config"].get("hidden_widths")
        ours = getattr(model, "config", {}).get("hidden_widths")
        if theirs != ours:  # a narrowed encoder (scripts/prune_checkpoint.py): say so instead of 100 size mismatches
            raise ValueError(
                f"{path}: its encoder's hidden widths are {theirs or 'whole'} and this model's {ours or 'whole'}; "
                f"train with --hidden-widths {theirs!r}"
                if theirs
                else f"{path}: its encoder is whole; drop --hidden-widths"
            )
        model.load_state_dict(state)
        return len(state)
    own = model.state_dict()
    taken = {key: value for key, value in state.items() if key in own and own[key].shape == value.shape}
    if not taken:
        raise ValueError(f"{path}: no tensor matches this model by name and shape; nothing to start from")
    model.load_state_dict(taken, strict=False)
    if log_it:
        skipped = sorted(set(own) - set(taken))
        log.info(
            "--init-from %s: %d of %d tensors taken, %d kept fresh (%s)",
            path,
            len(taken),
            len(own),
            len(skipped),
            ", ".join(sorted({".".join(key.split(".")[:3]) for key in skipped})) or "none",
        )
    return len(taken)


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    params = [p for p in model.parameters() if p.requires_grad]  # --train-only leaves the rest out
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer):
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=cfg.plateau_patience, min_lr=1e-6
        )
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.lr * 0.01)
    return None
