"""Bare network time per image: the ONNX session (or MediaPipe's interpreter) on one preprocessed input.

This is the figure the model budgets are set in (personseg-default under 20 ms on 2 threads, both passes of its
second look at the people included; personseg-fast at most 2x MediaPipe selfie's time, both of its stages included
when it runs in two); photo_bench.py gives the end-to-end figures. A model that fits each photo's shape within its
input size's pixels (resize "fit") is timed at the square, its largest input, and at a 16:9 photo's shape.

    python benchmarks/network_speed.py --models personseg-default personseg-fast --threads 2 --repeats 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine  # noqa: E402
from peers import DEFAULT_MEDIAPIPE, MediaPipeSelfie  # noqa: E402

from personseg.inference.api import load_model  # noqa: E402


def timed(call, repeats: int, warmup: int = 10) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["personseg-default", "personseg-fast"])
    parser.add_argument("--mediapipe", default=str(DEFAULT_MEDIAPIPE), help="'' to leave the peer out")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    rows = []
    for name in args.models:
        model = load_model(name, providers="cpu", threads=args.threads)
        h, w = model.meta["input_size"]
        batch = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
        rows.append((Path(name).name, f"{w}x{h}", timed(lambda m=model, b=batch: m._forward(b), args.repeats)))
        first = model.zoom.first_size if model.zoom is not None else None
        if first:  # the two stages: every photo costs the look-out at first_size and the crop at the input size
            small = batch[:, :, :first, :first].copy()
            both = timed(lambda m=model, a=small, b=batch: (m._forward(a), m._forward(b)), args.repeats)
            rows.append((f"{Path(name).name}, two stages", f"{first}x{first} + {w}x{h}", both))
        elif model.zoom is not None:  # a photo whose people fill little of it costs a second pass on their crop
            second = timed(lambda m=model, b=batch: (m._forward(b), m._forward(b)), args.repeats)
            rows.append((f"{Path(name).name}, with the second look (2 passes)", f"{w}x{h} twice", second))
        if model.meta["resize"] == "fit":  # the square above is its largest input; a 16:9 frame goes in smaller
            fh, fw = model.network_shape(720, 1280)
            frame = np.random.default_rng(0).standard_normal((1, 3, fh, fw)).astype(np.float32)
            rows.append(
                (
                    f"{Path(name).name}, a 16:9 photo",
                    f"{fw}x{fh}",
                    timed(lambda m=model, b=frame: m._forward(b), args.repeats),
                )
            )
    if args.mediapipe:
        peer = MediaPipeSelfie(args.mediapipe, threads=args.threads)
        x = np.random.default_rng(0).random((1, int(peer.height), int(peer.width), 3), dtype=np.float32)
        peer.interpreter.set_tensor(peer.input["index"], x)
        rows.append(("mediapipe-selfie", f"{peer.width}x{peer.height}", timed(peer.interpreter.invoke, args.repeats)))

    print(f"{machine()}, {args.threads} threads, batch 1, median and p90 of {args.repeats} runs\n")
    print("| model | input | median ms | p90 ms |\n| --- | --- | ---: | ---: |")
    for name, size, times in rows:
        print(f"| {name} | {size} | {statistics.median(times):.2f} | {np.percentile(times, 90):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
