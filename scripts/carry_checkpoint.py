"""Shrink a run's last.pt to what a long run needs to go on in another session, small enough to commit.

A training run that spans working sessions on fresh machines must carry its resumable checkpoint in the
repository. ``last.pt`` holds the weights plus Adam's two moments per weight (three times the weights' size: 64 MB
for DeepLabV3+/EfficientNet-Lite2). The copy keeps the weights, the epoch, the learning-rate schedule (the
optimizer's parameter groups included), the AMP scaler and the random state, and drops the moments; on
``--resume`` Adam starts them afresh (logged), which costs a few steps of a noisier update, not the run.
A run with ``--ema`` also keeps its live weights beside the averaged ones, so its copy is twice the weights' size.

    python scripts/carry_checkpoint.py runs/personseg-default-v8-lite2/last.pt \
        --output checkpoints/personseg-default-v8-resume.pt
    # next session: mkdir -p runs/personseg-default-v8-lite2
    #               cp checkpoints/personseg-default-v8-resume.pt runs/personseg-default-v8-lite2/last.pt
    #               personseg train --config configs/experiments/personseg-default-v8-lite2.yaml --resume
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from personseg.models.checkpoint import atomic_save, read_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a run's last.pt (written by personseg train)")
    parser.add_argument("--output", required=True, help="the small resumable copy to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        ckpt = read_checkpoint(args.checkpoint)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = ckpt.get("train_state")
    if not state or "optimizer" not in state:
        print(f"error: {args.checkpoint}: no training state (a best.pt?); give the run's last.pt", file=sys.stderr)
        return 2
    state["optimizer"] = dict(state["optimizer"], state={})
    atomic_save(ckpt, args.output)
    logging.info(
        "wrote %s (%.1f MB, from %.1f MB): epoch %d, without Adam's moments",
        args.output,
        os.path.getsize(args.output) / 2**20,
        os.path.getsize(args.checkpoint) / 2**20,
        state["epoch"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
