"""Bare network time per image: the ONNX session (or MediaPipe's interpreter) on one preprocessed input.

This is the figure the model budgets are set in (personseg-default under 20 ms on 2 threads, both passes of its
second look at the people included, the crop at the model's `crop_size` where it sets one; personseg-fast at most 2x
MediaPipe selfie's time, both of its stages included when it runs in two); photo_bench.py gives the end-to-end
figures. A model that fits each photo's shape within its input size's pixels (resize "fit") is timed at the square,
its largest input, and at a 16:9 photo's shape.

Back-to-back runs (each call timed `--repeats` times in a row) drift with the machine's load: on a shared VM two runs
an hour apart have differed by up to 1.7x. `--interleave N` times every call in turn, N calls each per round, over
`--repeats` rounds, so a slow minute slows all of them alike and the ratios to MediaPipe hold:

    python benchmarks/network_speed.py --models personseg-default personseg-fast --threads 2 --repeats 200
    python benchmarks/network_speed.py --models personseg-fast --threads 2 --interleave 10 --repeats 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine  # noqa: E402
from peers import DEFAULT_MEDIAPIPE, MediaPipeSelfie  # noqa: E402

from personseg.inference.api import load_model  # noqa: E402


def timed(call, repeats: int, warmup: int = 10) -> list[float]:
    """Milliseconds of `repeats` calls in a row, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def interleaved(calls: list[Callable[[], object]], rounds: int, per_round: int, warmup: int = 20) -> list[list[float]]:
    """Milliseconds of each call, timed in turn: every round runs each call `per_round` times before the next call."""
    for call in calls:
        for _ in range(warmup):
            call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for call, own in zip(calls, times, strict=True):
            for _ in range(per_round):
                start = time.perf_counter()
                call()
                own.append((time.perf_counter() - start) * 1000)
    return times


def rng_batch(h: int, w: int) -> np.ndarray:
    """A (1, 3, h, w) float32 batch of noise: the network's time does not depend on the pixels."""
    return np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)


def network_calls(name: str, threads: int) -> list[tuple[str, str, Callable[[], object]]]:
    """(row name, input, call) for each network call a model makes on a photo: one pass, and its second look."""
    model = load_model(name, providers="cpu", threads=threads)
    label = Path(name).name
    h, w = model.meta["input_size"]
    batch = rng_batch(h, w)
    rows = [(label, f"{w}x{h}", lambda: model._forward(batch))]
    first = model.zoom.first_size if model.zoom is not None else None
    if first:  # the two stages: every photo costs the look-out at first_size and the crop at the input size
        small = batch[:, :, :first, :first].copy()
        rows.append(
            (
                f"{label}, two stages",
                f"{first}x{first} + {w}x{h}",
                lambda: (model._forward(small), model._forward(batch)),
            )
        )
    elif model.zoom is not None:  # a photo whose people fill little of it costs a second pass on their crop
        crop = model.zoom.crop_size  # the crop's own size (its largest input is the square), else the input size
        second = rng_batch(crop, crop) if crop else batch
        rows.append(
            (
                f"{label}, with the second look (2 passes)",
                f"{w}x{h} + {crop}x{crop}" if crop else f"{w}x{h} twice",
                lambda: (model._forward(batch), model._forward(second)),
            )
        )
    if model.meta["resize"] == "fit":  # the square above is its largest input; a 16:9 frame goes in smaller
        fh, fw = model.network_shape(720, 1280)
        frame = rng_batch(fh, fw)
        rows.append((f"{label}, a 16:9 photo", f"{fw}x{fh}", lambda: model._forward(frame)))
    return rows


def mediapipe_call(path: str, threads: int) -> tuple[str, str, Callable[[], object]]:
    peer = MediaPipeSelfie(path, threads=threads)
    x = np.random.default_rng(0).random((1, int(peer.height), int(peer.width), 3), dtype=np.float32)
    peer.interpreter.set_tensor(peer.input["index"], x)
    return ("mediapipe-selfie", f"{peer.width}x{peer.height}", peer.interpreter.invoke)


def table(rows: list[tuple[str, str]], times: list[list[float]], reference: int | None) -> str:
    """Markdown rows: median and p90 of each call, and its median over the reference row's (MediaPipe's)."""
    ratio = reference is not None
    lines = ["| model | input | median ms | p90 ms |" + (" of MediaPipe's |" if ratio else "")]
    lines.append("| --- | --- | ---: | ---: |" + (" ---: |" if ratio else ""))
    base = statistics.median(times[reference]) if ratio else None
    for (name, size), own in zip(rows, times, strict=True):
        median = statistics.median(own)
        line = f"| {name} | {size} | {median:.2f} | {np.percentile(own, 90):.2f} |"
        lines.append(line + (f" {median / base:.2f}x |" if ratio else ""))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["personseg-default", "personseg-fast"])
    parser.add_argument("--mediapipe", default=str(DEFAULT_MEDIAPIPE), help="'' to leave the peer out")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200, help="runs of each call; rounds with --interleave")
    parser.add_argument(
        "--interleave", type=int, default=0, metavar="N", help="time the calls in turn, N of each per round"
    )
    args = parser.parse_args()

    calls = [row for name in args.models for row in network_calls(name, args.threads)]
    if args.mediapipe:
        calls.append(mediapipe_call(args.mediapipe, args.threads))
    functions = [call for _, _, call in calls]
    if args.interleave:
        times = interleaved(functions, args.repeats, args.interleave)
        how = f"interleaved: {args.repeats} rounds of {args.interleave} calls each"
    else:
        times = [timed(call, args.repeats) for call in functions]
        how = f"{args.repeats} runs in a row each"
    print(f"{machine()}, {args.threads} threads, batch 1, median and p90 ({how})\n")
    reference = len(calls) - 1 if args.mediapipe else None
    print(table([(name, size) for name, size, _ in calls], times, reference))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
