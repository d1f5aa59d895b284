"""The training loop: ``train_one_epoch``, ``evaluate`` and ``main(cfg)``, readable top to bottom.

Each epoch: train loss, val loss and Dice/IoU/pixel accuracy (overall and per source), TensorBoard scalars and a
grid of val predictions, a CSV row, ``last.pt`` (with everything ``--resume`` needs) and ``best.pt`` on the best
val IoU. Under torchrun the same code runs DDP; metrics are summed across ranks before they are reported.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from personseg.evaluation.metrics import MetricAccumulator
from personseg.losses import drop_ignored, get_loss
from personseg.models import make_checkpoint, read_checkpoint
from personseg.models.checkpoint import atomic_save, unwrap
from personseg.training import builders
from personseg.training.averaging import WeightAverage
from personseg.training.config import TrainConfig
from personseg.training.distill import Distiller
from personseg.training.distributed import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed
from personseg.training.freeze import freeze_all_but, keep_frozen_statistics
from personseg.training.prior import self_prior, synthetic_prior, temporal_loss, with_prior
from personseg.training.rounding import WeightRounding
from personseg.training.shapes import shape_crop
from personseg.training.visualization import plot_history, prediction_grid, save_grid

log = logging.getLogger(__name__)

HISTORY_FIELDS = [
    "epoch",
    "lr",
    "train_loss",
    "val_loss",
    "val_dice",
    "val_iou",
    "val_pixel_accuracy",
    "val_select",
    "seconds",
]


def pick_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether the CPU computes bf16 natively (avx512_bf16 or AMX); None where its flags cannot be read."""
    try:
        flags = cpuinfo.read_text(errors="replace").split()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_for(cfg: TrainConfig, device: torch.device):
    """bf16 autocast on CPU when asked (avx512_bf16 makes it ~2.5x faster), fp16 on CUDA by default."""
    precision = cfg.precision
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext, False
    if precision == "bf16" and device.type == "cpu" and cpu_has_native_bf16() is False:
        # Measured on an AVX2-only EPYC: 156 s a step in bf16 against 21 s in fp32 (v10's config, batch 16 at 320).
        log.warning(
            "--precision bf16 on a CPU without avx512_bf16 or AMX is emulated and several times slower than fp32; "
            "use --precision fp32 on this machine"
        )
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), precision == "fp16" and device.type == "cuda"


class Normalizer:
    """uint8 NCHW batch -> normalised float on the device (done on the batch, not per sample)."""

    def __init__(self, mean: list[float], std: list[float], device: torch.device, channels_last: bool) -> None:
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
        self.device = device
        self.channels_last = channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True).float()
        return ((x - self.mean) / self.std).contiguous(memory_format=self.memory_format)


class RunClock:
    """Times training steps for the whole run: an ETA for the progress bar and, after the first timed steps,
    one warning when the run will be long (the seed's 31M U-Net takes about an hour per epoch on a CPU)."""

    WARN_EPOCH_MINUTES = 10.0
    TIMED_STEPS = 3  # after one untimed warm-up step

    def __init__(self, steps_per_epoch: int, epochs_left: int, device: torch.device) -> None:
        self.steps_left = steps_per_epoch * epochs_left
        self.steps_per_epoch = steps_per_epoch
        self.epochs_left = epochs_left
        self.device = device
        self.seen = 0
        self.timed = 0.0
        self.last = time.perf_counter()
        self.warned = False

    def step(self) -> None:
        now = time.perf_counter()
        if self.seen >= 1:  # the first step pays for warm-up and loader start
            self.timed += now - self.last
        self.last = now
        self.seen += 1
        self.steps_left -= 1
        if not self.warned and self.seen == self.TIMED_STEPS + 1:
            self.warned = True
            per_epoch = self.seconds_per_step * self.steps_per_epoch / 60
            if per_epoch >= self.WARN_EPOCH_MINUTES:
                log.warning(
                    "training on %s: %.1f s per step, about %.0f min per epoch, %s for the %d epoch(s) to go "
                    "(Ctrl-C stops; --resume continues from the last finished epoch)",
                    self.device.type.upper(),
                    self.seconds_per_step,
                    per_epoch,
                    _duration(per_epoch * 60 * self.epochs_left),
                    self.epochs_left,
                )

    @property
    def seconds_per_step(self) -> float:
        return self.timed / max(self.seen - 1, 1)

    def eta(self) -> str:
        return _duration(self.seconds_per_step * max(self.steps_left, 0)) if self.seen > 1 else "?"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"


@dataclass
class EpochContext:
    """Everything one training epoch uses, built once by :func:`main`."""

    model: torch.nn.Module  # what trains: possibly compiled and/or DDP-wrapped
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    loss_fn: torch.nn.Module
    normalize: Normalizer
    autocast: Callable[[], contextlib.AbstractContextManager]
    scaler: torch.amp.GradScaler
    cfg: TrainConfig
    info: DistInfo
    distiller: Distiller | None = None
    clock: RunClock | None = None
    rounding: contextlib.AbstractContextManager = contextlib.nullcontext()  # WeightRounding with --round-weights
    average: WeightAverage | None = None  # with --ema

    def scored_weights(self, model) -> contextlib.AbstractContextManager:
        """The weights that are scored and saved in ``model`` while the block runs: the running average with
        --ema (the block gets the live state dict), else the live weights (the block gets None)."""
        return self.average.applied(model) if self.average is not None else contextlib.nullcontext()


def train_one_epoch(ctx: EpochContext, epoch: int) -> float:
    """One pass over ``ctx.loader``; returns the mean training loss (over all ranks)."""
    ctx.model.train()
    keep_frozen_statistics(unwrap(ctx.model), ctx.cfg.train_only)
    total = torch.zeros(2, dtype=torch.float64)
    progress = _progress(ctx.loader, ctx.info, f"epoch {epoch}/{ctx.cfg.epochs} train")
    for images, masks in progress:
        x, y = ctx.normalize(images), masks.to(ctx.normalize.device, non_blocking=True)
        soft = None
        if ctx.distiller is not None:
            x, y, soft = ctx.distiller.split(x, y)
        if ctx.cfg.shape_crops > 0 and torch.rand(1).item() < ctx.cfg.shape_crops:
            x, y, soft = shape_crop([x, y, soft])
            x = x.contiguous(memory_format=ctx.normalize.memory_format)
        own_prior = ctx.cfg.temporal_prior == "self"  # the config allows it only for a temporal model
        if own_prior:
            prior, earlier_masks, own = self_prior(ctx.model, x, y, ctx.autocast, ctx.normalize.channels_last)
            x = with_prior(x, prior, ctx.normalize.channels_last)
        elif ctx.cfg.temporal:
            x = with_prior(x, synthetic_prior(y), ctx.normalize.channels_last)
        ctx.optimizer.zero_grad(set_to_none=True)
        with ctx.rounding:  # forward and backward at the rounded weights; the float ones come back for the step
            with ctx.autocast():
                logits = ctx.model(x).float()
            loss = ctx.loss_fn(*drop_ignored(logits, y))
            if own_prior and ctx.cfg.temporal_weight > 0:
                change = temporal_loss(torch.sigmoid(logits), prior, y, earlier_masks, own)
                loss = loss + ctx.cfg.temporal_weight * change
            if ctx.distiller is not None:
                loss = ctx.distiller.blend(loss, logits, soft)
            ctx.scaler.scale(loss).backward()
        if ctx.cfg.grad_clip > 0:
            ctx.scaler.unscale_(ctx.optimizer)
            torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), ctx.cfg.grad_clip)
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
        if ctx.average is not None:
            ctx.average.update(unwrap(ctx.model))
        total += torch.tensor([loss.item() * len(images), len(images)], dtype=torch.float64)
        if ctx.clock is not None:
            ctx.clock.step()
        if hasattr(progress, "set_postfix"):
            postfix = {"loss": f"{total[0] / total[1]:.4f}"}
            if ctx.clock is not None:
                postfix["run_eta"] = ctx.clock.eta()
            progress.set_postfix(postfix, refresh=False)
    total = all_reduce_sum(total, ctx.info)
    return float(total[0] / max(total[1], 1))


@torch.no_grad()
def evaluate(
    model, loader, loss_fn, normalize, autocast, info, desc: str = "val", temporal: bool = False
) -> dict[str, float]:
    """Val loss and dataset-wide metrics (summed over DDP ranks); a ``temporal`` model runs with an empty prior."""
    model.eval()
    acc = MetricAccumulator()
    loss_sum = torch.zeros(2, dtype=torch.float64)
    for images, masks in _progress(loader, info, desc):
        x, y = normalize(images), masks.to(normalize.device)
        if temporal:
            x = with_prior(x, None, normalize.channels_last)
        with autocast():
            logits = model(x)
        logits = logits.float()
        loss_sum += torch.tensor(
            [loss_fn(*drop_ignored(logits, y)).item() * len(images), len(images)], dtype=torch.float64
        )
        acc.update(torch.sigmoid(logits), y)
    state = all_reduce_sum(torch.cat([acc.state_tensor().cpu(), loss_sum]), info)
    acc.load_state_tensor(state[:-2])
    metrics = acc.compute()
    metrics["loss"] = float(state[-2] / max(state[-1], 1))
    return {k: float(v) for k, v in metrics.items()}


def _progress(loader, info: DistInfo, desc: str):
    if not info.is_main:
        return loader
    from tqdm import tqdm

    # In a log file (not a terminal) refresh rarely so the log stays readable.
    return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 30)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]), "numpy_seed": 0}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def checkpoint_meta(cfg: TrainConfig, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
    return {
        "input_size": [cfg.input_size, cfg.input_size],
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "resize": cfg.resize,
        "threshold": 0.5,
        "epoch": epoch,
        "val_metrics": metrics,
        "training_data": [str(builders.parse_root(s)[0]) for s in cfg.data],
        "train_config": cfg.to_dict(),
    }


def _val_grid(model, val_loader, normalize, autocast, n: int, temporal: bool = False) -> np.ndarray:
    with torch.random.fork_rng():  # making a loader iterator draws from the global RNG: keep resume exact
        images, masks = next(iter(val_loader))
    images, masks = images[:n], masks[:n]
    x = normalize(images)
    if temporal:
        x = with_prior(x, None, normalize.channels_last)
    with torch.no_grad(), autocast():
        probs = torch.sigmoid(model(x).float())
    return prediction_grid(images.permute(0, 2, 3, 1).numpy(), masks[:, 0].numpy(), probs[:, 0].cpu().numpy())


def check_names(cfg: TrainConfig) -> None:
    """Fail on an unknown --arch or --loss before minutes go into loading datasets."""
    from personseg.models import list_architectures

    if cfg.arch not in list_architectures():
        raise KeyError(f"--arch {cfg.arch!r}: unknown architecture; valid: {', '.join(list_architectures())}")
    get_loss(cfg.loss)


def restore(
    ckpt_path: Path, model, optimizer, scheduler, scaler, cfg: TrainConfig
) -> tuple[int, float, int, dict | None]:
    """Load ``last.pt`` into the live objects; returns (next epoch, best score, stale epochs, the weight average's
    state or None). A run with --ema saved its average as the weights and the live ones beside the train state."""
    ckpt = read_checkpoint(ckpt_path)
    ts = ckpt["train_state"]
    model.load_state_dict(ts.get("live_weights", ckpt["state_dict"]))
    average = ts.get("average")
    if average is not None:  # the average itself is what the file saved as its weights
        average = {**average, "shadow": ckpt["state_dict"]}
    if average is not None and not cfg.ema:
        log.info("%s was trained with --ema; resumed without it: training goes on from the live weights", ckpt_path)
    optimizer.load_state_dict(ts["optimizer"])
    if not ts["optimizer"]["state"]:
        log.info("%s carries no optimizer moments (scripts/carry_checkpoint.py): Adam starts them afresh", ckpt_path)
    if scheduler is not None and ts.get("scheduler"):
        scheduler.load_state_dict(ts["scheduler"])
        if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) and scheduler.T_max != cfg.epochs:
            # --epochs changed on resume: stretch/shrink the cosine from where it is to the new end.
            log.info("cosine schedule: T_max %d -> %d epochs", scheduler.T_max, cfg.epochs)
            scheduler.T_max = cfg.epochs
    if ts.get("scaler"):
        scaler.load_state_dict(ts["scaler"])
    _set_rng_state(ts["rng"])
    return ts["epoch"] + 1, ts["best_iou"], ts["stale"], average


def save_epoch(
    out: Path, model, ctx: EpochContext, scheduler, epoch: int, metrics, best: float, stale: int, improved, live=None
):
    """``last.pt`` (weights + what --resume needs) every epoch, ``best.pt`` (weights only) when it improved, and
    with ``--keep-epochs`` this epoch's weights as ``epochNNN.pt``: the trainer's pick (in-loop, letterboxed) and the
    full-resolution benchmark do not always agree, and a pick by the benchmark must be a file that stays.
    With --ema ``model`` holds the average (what was scored) and ``live`` the live weights, kept in last.pt only."""
    train_state = {
        "epoch": epoch,
        "best_iou": best,
        "stale": stale,
        "optimizer": ctx.optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": ctx.scaler.state_dict(),
        "rng": _rng_state(),
    }
    if ctx.average is not None:
        train_state["live_weights"] = {k: v.detach().cpu() for k, v in live.items()}
        train_state["average"] = {**ctx.average.state_dict(), "shadow": None}  # the shadow is the saved weights
    ckpt = make_checkpoint(model, checkpoint_meta(ctx.cfg, epoch, metrics), train_state)
    atomic_save(ckpt, out / "last.pt")
    del ckpt["train_state"]
    if improved:
        atomic_save(ckpt, out / "best.pt")
    if ctx.cfg.keep_epochs:
        atomic_save(ckpt, out / f"epoch{epoch:03d}.pt")


def main(cfg: TrainConfig) -> dict[str, Any]:
    """Train as configured; returns the final history row and paths. Safe to call under torchrun."""
    check_names(cfg)
    device = pick_device(cfg.device)
    info = init_distributed(device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed + info.rank)
    out = Path(cfg.output)
    if cfg.resume and not (out / "last.pt").is_file():
        raise FileNotFoundError(f"--resume: {out / 'last.pt'} does not exist (train without --resume first)")
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save_yaml(out / "config.yaml")

    # --- data, model, optimisation
    autocast, use_scaler = autocast_for(cfg, device)
    distiller = None
    if cfg.teacher:
        distiller = Distiller(
            cfg.teacher,
            cfg.distill_weight,
            cfg.input_size,
            cfg.mean,
            cfg.std,
            device,
            autocast,
            cfg.channels_last,
            flip=cfg.teacher_flip,
            size=cfg.teacher_size,
            band=cfg.distill_band,
        )
    train_set, val_sets = builders.build_datasets(cfg, train_size=distiller.size if distiller else None)
    check_select_sources(cfg.select_sources, val_sets)  # before the first epoch, not after it
    train_loader, val_loaders = builders.build_loaders(cfg, train_set, val_sets, info, pin=device.type == "cuda")
    model = builders.build_model(cfg).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.init_from:
        builders.init_weights(model, cfg.init_from, partial=cfg.init_partial, log_it=info.is_main)
    trained = freeze_all_but(model, cfg.train_only)
    if cfg.train_only and info.is_main:
        log.info("--train-only %s: %d of %d parameters train", cfg.train_only, trained, model.get_num_params())
    optimizer = builders.build_optimizer(cfg, model)
    scheduler = builders.build_scheduler(cfg, optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    loss_fn = get_loss(cfg.loss)
    normalize = Normalizer(cfg.mean, cfg.std, device, cfg.channels_last)

    start_epoch, best_iou, stale, saved_average = 1, -1.0, 0, None
    if cfg.resume:
        start_epoch, best_iou, stale, saved_average = restore(out / "last.pt", model, optimizer, scheduler, scaler, cfg)
        if info.is_main:
            log.info("resumed from %s at epoch %d", out / "last.pt", start_epoch)
    average = WeightAverage(model, cfg.ema, warmup=cfg.ema_warmup) if cfg.ema else None
    if average is not None and saved_average is not None:
        average.load_state_dict(saved_average)

    train_model = torch.compile(model) if cfg.compile else model
    if info.enabled:
        train_model = DistributedDataParallel(train_model, device_ids=[device.index] if device.type == "cuda" else None)
    ctx = EpochContext(train_model, train_loader, optimizer, loss_fn, normalize, autocast, scaler, cfg, info, distiller)
    ctx.average = average
    if cfg.round_weights:
        ctx.rounding = WeightRounding(model, cfg.round_weights)
    if info.is_main:
        ctx.clock = RunClock(len(train_loader), cfg.epochs - start_epoch + 1, device)
        log.info(
            "model %s: %.2fM parameters; %d train samples/epoch; val %s",
            cfg.arch,
            unwrap(model).get_num_params() / 1e6,
            len(train_set),
            {k: len(v) for k, v in val_sets.items()},
        )

    # --- the epochs
    writer = _open_writer(out) if info.is_main else None
    history_path = out / "history.csv"
    row: dict[str, Any] = {}
    try:
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.time()
            train_set.set_epoch(epoch)
            if hasattr(train_loader.sampler, "set_epoch"):
                train_loader.sampler.set_epoch(epoch)
            train_loss = train_one_epoch(ctx, epoch)
            if info.enabled:
                # BatchNorm running stats drift apart per rank; evaluate (and save) rank 0's model everywhere.
                for buffer in unwrap(model).buffers():
                    torch.distributed.broadcast(buffer, 0)
                for mean in average.shadow.values() if average is not None else ():
                    torch.distributed.broadcast(mean, 0)
            with ctx.scored_weights(model) as live:  # the running average with --ema
                with ctx.rounding:  # scored as the int8 export will round the weights
                    per_source = {
                        name: evaluate(model, loader, loss_fn, normalize, autocast, info, f"val {name}", cfg.temporal)
                        for name, loader in val_loaders.items()
                    }
                val = _pool(per_source, {k: len(v) for k, v in val_sets.items()})
                score = _selection_score(val, per_source, cfg.select_sources)
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(val["loss"])
                elif scheduler is not None:
                    scheduler.step()
                improved = score > best_iou
                best_iou, stale = (score, 0) if improved else (best_iou, stale + 1)
                row = {
                    "epoch": epoch,
                    "lr": optimizer.param_groups[0]["lr"],
                    "train_loss": train_loss,
                    "val_loss": val["loss"],
                    "val_dice": val["dice"],
                    "val_iou": val["iou"],
                    "val_pixel_accuracy": val["pixel_accuracy"],
                    "val_select": score,
                    "seconds": round(time.time() - t0, 1),
                }
                if info.is_main:
                    metrics = {"overall": val, **per_source}
                    save_epoch(out, model, ctx, scheduler, epoch, metrics, best_iou, stale, improved, live)
                    _append_history(history_path, row)
                    _log_epoch(writer, row, per_source, epoch)
                    if cfg.vis_every and epoch % cfg.vis_every == 0:
                        first = next(iter(val_loaders.values()))
                        with ctx.rounding:  # drawn at the weights the figures above were scored with
                            grid = _val_grid(model, first, normalize, autocast, cfg.vis_images, cfg.temporal)
                        save_grid(grid, out / "val_predictions.png")
                        writer.add_image("val/predictions", grid, epoch, dataformats="HWC")
                log.info(
                    "epoch %d: train %.4f | val loss %.4f dice %.4f iou %.4f acc %.4f mae %.4f select %.4f"
                    " | %s | %.0fs",
                    epoch,
                    train_loss,
                    val["loss"],
                    val["dice"],
                    val["iou"],
                    val["pixel_accuracy"],
                    val["mae"],
                    score,
                    " ".join(f"{k}={v['iou']:.3f}/{v['mae']:.3f}" for k, v in per_source.items()),
                    row["seconds"],
                )
            barrier(info)
            if cfg.early_stopping and stale >= cfg.early_stopping:
                if info.is_main:
                    log.info("early stopping: no val IoU improvement for %d epochs", stale)
                break
    finally:
        if writer is not None:
            writer.close()
    if info.is_main and history_path.exists():
        plot_history(history_path, out / "curves.png")
    cleanup(info)
    return {"last": row, "best_iou": best_iou, "output": str(out)}


def _open_writer(out: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"))


def check_select_sources(names: list[str], sources: Iterable[str]) -> None:
    """ValueError naming the --select-sources that are not validation sources."""
    available = set(sources)
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"--select-sources {missing}: no such validation source (have {sorted(available)})")


def _selection_score(val: dict[str, float], per_source: dict[str, dict[str, float]], names: list[str]) -> float:
    """What picks best.pt: the mean IoU over ``names`` (a macro average over sources), or the pooled IoU."""
    if not names:
        return val["iou"]
    check_select_sources(names, per_source)
    return sum(per_source[n]["iou"] for n in names) / len(names)


def _pool(per_source: dict[str, dict[str, float]], sizes: dict[str, int]) -> dict[str, float]:
    """Image-weighted mean of per-source figures (each is a mean over images)."""
    total = sum(sizes.values())
    return {k: sum(per_source[s][k] * sizes[s] for s in per_source) / total for k in next(iter(per_source.values()))}


def _append_history(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def _log_epoch(writer, row: dict[str, Any], per_source: dict[str, dict[str, float]], epoch: int) -> None:
    for key, value in row.items():
        if key != "epoch" and isinstance(value, float | int) and math.isfinite(value):
            writer.add_scalar(key.replace("_", "/", 1), value, epoch)
    for name, metrics in per_source.items():
        writer.add_scalar(f"val_iou/{name}", metrics["iou"], epoch)
        writer.add_scalar(f"val_mae/{name}", metrics["mae"], epoch)
    writer.flush()
