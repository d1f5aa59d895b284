"""Training throughput (images/s) with real data loading vs in-memory tensors.

Shows whether the data pipeline (decode cache + Albumentations + compositing, in loader workers) keeps up with
the model: the two figures should be within 10%. Uses a training config for the data pipeline, e.g.

    python benchmarks/train_throughput.py --config configs/personseg-default.yaml \
        --models unet deeplabv3plus:efficientnet_lite0 --batch-size 8 --input-size 256 --threads 2
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

from personseg.losses import get_loss  # noqa: E402
from personseg.models import create_model  # noqa: E402
from personseg.training import builders  # noqa: E402
from personseg.training.config import TrainConfig  # noqa: E402
from personseg.training.distributed import DistInfo  # noqa: E402
from personseg.training.trainer import Normalizer, autocast_for  # noqa: E402


def step_timer(model, batches, cfg: TrainConfig, steps: int, warmup: int = 2) -> float:
    """Images/s over ``steps`` optimizer steps drawn from the iterator ``batches``."""
    device = torch.device("cpu")
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = get_loss(cfg.loss)
    normalize = Normalizer(cfg.mean, cfg.std, device, cfg.channels_last)
    autocast, _ = autocast_for(cfg, device)
    model.train()
    n = 0
    for i, (images, masks) in enumerate(batches):
        if i == warmup:
            t0, n = time.perf_counter(), 0
        with autocast():
            logits = model(normalize(images))
        loss = loss_fn(logits.float(), masks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(images)
        if i == warmup + steps - 1:
            break
    return n / (time.perf_counter() - t0)


def loader_rate(loader, steps: int, warmup: int = 2) -> float:
    """Images/s the data pipeline alone delivers (no model): its ceiling on this machine."""
    n = 0
    for i, (images, _) in enumerate(loader):
        if i == warmup:
            t0, n = time.perf_counter(), 0
        n += len(images)
        if i == warmup + steps - 1:
            break
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="training config whose data pipeline to use")
    p.add_argument("--models", nargs="+", default=["unet", "deeplabv3plus:efficientnet_lite0"], help="NAME[:ENCODER]")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2, help="alternating real / in-memory timings, averaged")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--channels-last", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = TrainConfig.from_yaml(args.config)
    cfg.batch_size, cfg.input_size, cfg.workers = args.batch_size, args.input_size, args.workers
    cfg.precision, cfg.channels_last = args.precision, args.channels_last
    cfg.samples_per_epoch = args.batch_size * (args.steps + 4)
    train_set, val_sets = builders.build_datasets(cfg)
    loader, _ = builders.build_loaders(cfg, train_set, val_sets, DistInfo(), pin=False)
    fixed = next(iter(loader))
    print(
        f"# {machine()}, torch {torch.__version__}, {args.threads} threads, "
        f"{args.workers} loader worker(s), {args.input_size}x{args.input_size}, batch {args.batch_size}, "
        f"{args.precision}{' channels-last' if args.channels_last else ''}"
    )
    print(f"data pipeline alone (no model): {loader_rate(loader, args.steps):.1f} img/s\n")
    print("| model | params | in-memory img/s | real loading img/s | loading / in-memory |")
    print("|---|---|---|---|---|")
    for spec in args.models:
        name, _, encoder = spec.partition(":")
        kwargs = {"encoder": encoder} if encoder else {}
        model = create_model(name, **kwargs)
        # Alternate the two so neither gains from going first (the first timing of a fresh model runs fast).
        memory_runs, real_runs = [], []
        for _ in range(args.rounds):
            real_runs.append(step_timer(model, iter(loader), cfg, args.steps))
            memory_runs.append(step_timer(model, itertools.repeat(fixed), cfg, args.steps))
        memory, real = sum(memory_runs) / args.rounds, sum(real_runs) / args.rounds
        print(
            f"| {spec} | {model.get_num_params() / 1e6:.1f}M | {memory:.2f} | {real:.2f} | {real / memory:.1%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
