"""Photo path: end-to-end speed per image and the memory of a folder run, printed as markdown tables.

1. Speed: what ``personseg remove`` does for the cut-out output, on encoded JPEG bytes held in memory:
   decode (``read_image``) -> predict at full resolution (network + guided upsampling) and post-process
   (``postprocess``, the CLI's default options) -> compose the cut-out (foreground estimation + RGBA) -> encode
   the transparent PNG (``encode_image``). The test photos are ``--photo`` cover-cropped to each size and
   JPEG-encoded at quality 90. Each shipped model runs next to MediaPipe selfie segmentation doing the same job
   with a plain bilinear resize of its mask instead of the guided filter, in the same run. Median and p90 of
   ``--repeats`` runs after 2 warm-up runs, and the share of each stage in the total.
2. Memory: ``python -m personseg remove DIR -o OUT --outputs cutout`` on ``--folder-images`` generated 640x480
   JPEGs (the photo with a random crop, brightness and grain, so no two are the same), the child's VmRSS read
   from /proc every 0.2 s: RSS while the second 10% of the images is processed vs the last 10% (medians over
   each window), the maximum, the peak (VmHWM) and the growth, which should be about zero.

``--threads`` limits ONNX Runtime and OpenCV in this process, and is passed to the CLI as ``--threads``.
Full run (the numbers in the docs, 2 threads, on an otherwise idle machine):

    .venv/bin/python benchmarks/photo_bench.py --threads 2 --repeats 10 --folder-images 1000 \
        --markdown results/photo_bench.md --json results/photo_bench.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_name  # noqa: E402
from peers import DEFAULT_MEDIAPIPE, MediaPipeSelfie  # noqa: E402

import personseg  # noqa: E402
from personseg.inference import compose  # noqa: E402
from personseg.inference.io import encode_image, read_image  # noqa: E402
from personseg.inference.remove import RemoveOptions, Segmentation, postprocess, segment  # noqa: E402

DEFAULT_PHOTO = Path(personseg.__file__).parent / "assets" / "grace_hopper.jpg"
SIZES = ("640x480", "1920x1080", "4000x3000")
STAGES = ("decode", "predict+refine", "compose", "encode")
STAGE_NOTE = "median ms (share of the total)"
WARMUP = 2
JPEG_QUALITY = 90
SAMPLE_EVERY_S = 0.2
FOLDER_SIZE = (640, 480)


# --- machine ---------------------------------------------------------------------------------------------


def header_line(threads: int, photo: Path) -> str:
    import onnxruntime

    return (
        f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {threads} threads (ONNX Runtime, OpenCV, litert), "
        f"onnxruntime {onnxruntime.__version__}, personseg {personseg.__version__}; photo: {photo.name}"
    )


# --- test photos -----------------------------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 1920x1080") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be >= 1")
    return w, h


def test_jpeg(rgb: np.ndarray, width: int, height: int) -> bytes:
    """``rgb`` cover-cropped to ``width x height``, as JPEG bytes at quality 90."""
    return encode_image(np.ascontiguousarray(compose.cover(rgb, height, width)), ".jpg", JPEG_QUALITY)


# --- one image through the photo path ----------------------------------------------------------------------


@dataclass
class Pipeline:
    """A name, ``predict(rgb) -> full-resolution alpha`` and the threshold post-processing uses."""

    name: str
    predict: Callable[[np.ndarray], np.ndarray]
    threshold: float


def run_once(pipe: Pipeline, jpeg: bytes, options: RemoveOptions) -> tuple[dict[str, float], bytes]:
    """``segment`` + ``cutout`` + ``encode_image`` split into timed stages (seconds per stage, and the PNG)."""
    t0 = time.perf_counter()
    loaded = read_image(jpeg, name="bench.jpg")
    t1 = time.perf_counter()
    alpha = postprocess(loaded.rgb, pipe.predict(loaded.rgb), options, pipe.threshold)
    t2 = time.perf_counter()
    cut = Segmentation(image=loaded.rgb, alpha=alpha, options=options, source=loaded).cutout()
    t3 = time.perf_counter()
    png = encode_image(cut, ".png")
    t4 = time.perf_counter()
    return dict(zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True)), png


def same_as_cli(model, jpeg: bytes, options: RemoveOptions) -> bool:
    """Whether the staged path gives the same PNG bytes as the CLI's ``segment().cutout()`` + ``encode_image``."""
    staged = run_once(Pipeline("check", model.predict, model.threshold), jpeg, options)[1]
    cli = encode_image(segment(jpeg, model, options, name="bench.jpg").cutout(), ".png")
    return staged == cli


def measure(pipe: Pipeline, jpeg: bytes, options: RemoveOptions, repeats: int) -> list[dict[str, float]]:
    for _ in range(WARMUP):
        run_once(pipe, jpeg, options)
    return [run_once(pipe, jpeg, options)[0] for _ in range(repeats)]


def summarize(pipe: Pipeline, size: str, runs: list[dict[str, float]]) -> dict:
    totals = np.array([sum(r.values()) for r in runs]) * 1000.0
    share = {s: sum(r[s] for r in runs) / (totals.sum() / 1000.0) for s in STAGES}
    stage_ms = {s: float(np.median([r[s] for r in runs]) * 1000.0) for s in STAGES}
    return {
        "model": pipe.name,
        "size": size,
        "repeats": len(runs),
        "median_ms": float(np.median(totals)),
        "p90_ms": float(np.percentile(totals, 90)),
        "stage_median_ms": stage_ms,
        "stage_share": share,
    }


def load_pipelines(models: list[str], mediapipe: str, threads: int) -> list[Pipeline]:
    pipes = []
    for name in models:
        model = personseg.load_model(name, providers="cpu", threads=threads)
        label = Path(name).stem if os.sep in name else name
        pipes.append(Pipeline(label, model.predict, model.threshold))
    if mediapipe:
        peer = MediaPipeSelfie(mediapipe, threads=threads)
        pipes.append(Pipeline("mediapipe-selfie (bilinear)", peer.predict, 0.5))
    return pipes


def speed(pipes: list[Pipeline], photo: np.ndarray, sizes: list[str], repeats: int) -> list[dict]:
    options = RemoveOptions()  # personseg remove's defaults
    rows = []
    for size in sizes:
        jpeg = test_jpeg(photo, *parse_size(size))
        for pipe in pipes:
            print(f"  {pipe.name} at {size} ...", file=sys.stderr, flush=True)
            rows.append(summarize(pipe, size, measure(pipe, jpeg, options, repeats)))
    return rows


def speed_table(rows: list[dict]) -> str:
    lines = [
        "| model | size | median ms | p90 ms | " + " | ".join(STAGES) + " |",
        "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in STAGES) + " |",
    ]
    for r in rows:
        shares = " | ".join(f"{r['stage_median_ms'][s]:.1f} ({100 * r['stage_share'][s]:.0f}%)" for s in STAGES)
        lines.append(f"| {r['model']} | {r['size']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {shares} |")
    return "\n".join(lines)


# --- folder run: memory of the real CLI ----------------------------------------------------------------------


def make_folder(folder: Path, n: int, photo: np.ndarray, seed: int = 0) -> None:
    """``n`` different 640x480 JPEGs: random crops of the photo with random brightness and fine grain."""
    rng = np.random.default_rng(seed)
    w, h = FOLDER_SIZE
    base = compose.cover(photo, h + 48, w + 64).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        y, x = int(rng.integers(0, 49)), int(rng.integers(0, 65))
        crop = base[y : y + h, x : x + w] * rng.uniform(0.85, 1.15) + rng.normal(0, 3, (h, w, 3))
        img = np.clip(crop, 0, 255).astype(np.uint8)
        (folder / f"img_{i:05d}.jpg").write_bytes(encode_image(img, ".jpg", JPEG_QUALITY))


def rss_mb(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of ``pid`` in MB, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024.0  # kB -> MB
    if "VmRSS" not in values:  # a zombie has no memory lines
        return None
    return values["VmRSS"], values.get("VmHWM", values["VmRSS"])


def count_done(out: Path) -> int:
    try:
        return sum(1 for e in os.scandir(out) if e.name.endswith("_cutout.png") and not e.name.startswith("."))
    except FileNotFoundError:
        return 0


def run_cli(src: Path, out: Path, model: str, threads: int, log_path: Path) -> tuple[list[dict], int, float]:
    """Run ``personseg remove`` on ``src``, sampling RSS and progress; (samples, exit code, seconds)."""
    cmd = [sys.executable, "-m", "personseg", "remove", str(src), "-o", str(out), "--outputs", "cutout", "-q"]
    cmd += ["--model", model, "--threads", str(threads)]
    samples = []
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        while child.poll() is None:
            mem = rss_mb(child.pid)
            if mem is not None:
                t = time.perf_counter() - start
                samples.append({"t": round(t, 3), "done": count_done(out), "rss_mb": mem[0], "hwm_mb": mem[1]})
            time.sleep(SAMPLE_EVERY_S)
    return samples, child.returncode, time.perf_counter() - start


def window_rss(samples: list[dict], lo: int, hi: int) -> float:
    """Median RSS over the samples taken while images ``lo <= done < hi`` were being processed.

    RSS swings by one image's working set within each image, so a window evens out where a sample happens to fall.
    """
    values = [s["rss_mb"] for s in samples if lo <= s["done"] < hi]
    if not values:  # too few samples in the window (a very short run): the last one before it ends
        values = [next((s["rss_mb"] for s in reversed(samples) if s["done"] < hi), samples[-1]["rss_mb"])]
    return float(np.median(values))


def memory_summary(samples: list[dict], n: int, seconds: float, model: str, threads: int) -> dict:
    tenth = max(1, math.ceil(0.1 * n))
    done = samples[-1]["done"]
    early = window_rss(samples, tenth, 2 * tenth)
    end = window_rss(samples, max(tenth, done - tenth), n + 1)
    tail = [s for s in samples if s["done"] >= tenth]
    slope = None
    if len({s["done"] for s in tail}) > 1:  # MB per 1000 images, least squares over all but the first 10%
        slope = float(np.polyfit([s["done"] for s in tail], [s["rss_mb"] for s in tail], 1)[0]) * 1000.0
    return {
        "model": model,
        "threads": threads,
        "images": n,
        "seconds": seconds,
        "early_window": [tenth, 2 * tenth],
        "rss_early_mb": early,
        "end_window": [max(tenth, done - tenth), done],
        "rss_end_mb": end,
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "peak_hwm_mb": samples[-1]["hwm_mb"],
        "growth_mb": end - early,
        "slope_mb_per_1000": slope,
    }


def memory(photo: np.ndarray, n: int, model: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="photo_bench_") as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        print(f"  writing {n} test JPEGs to {src} ...", file=sys.stderr, flush=True)
        make_folder(src, n, photo)
        print(f"  personseg remove on {n} images ({model}) ...", file=sys.stderr, flush=True)
        samples, code, seconds = run_cli(src, out, model, threads, Path(tmp) / "cli.log")
        log = (Path(tmp) / "cli.log").read_text(errors="replace")
    if code != 0 or not samples:
        raise RuntimeError(f"personseg remove failed (exit {code}):\n{log[-2000:]}")
    result = memory_summary(samples, n, seconds, model, threads)
    result["samples"] = samples
    return result


def memory_table(m: dict) -> str:
    w, h = FOLDER_SIZE
    (e0, e1), (z0, z1) = m["early_window"], m["end_window"]
    per_image = 1000 * m["seconds"] / m["images"]
    slope = "n/a" if m["slope_mb_per_1000"] is None else f"{m['slope_mb_per_1000']:+.1f} MB per 1000 images"
    return "\n".join(
        [
            f"Folder run: `personseg remove DIR -o OUT --outputs cutout --threads {m['threads']}` "
            f"on {m['images']} {w}x{h} JPEGs with {m['model']}: {m['seconds']:.0f} s "
            f"({per_image:.0f} ms/image with start-up); "
            f"child VmRSS every {SAMPLE_EVERY_S} s, median over each window",
            "",
            "| RSS | images | MB |",
            "| --- | ---: | ---: |",
            f"| after the first 10% | {e0}-{e1} | {m['rss_early_mb']:.0f} |",
            f"| at the end | {z0}-{z1} | {m['rss_end_mb']:.0f} |",
            f"| max sampled | | {m['rss_max_mb']:.0f} |",
            f"| peak (VmHWM) | | {m['peak_hwm_mb']:.0f} |",
            "",
            f"Growth from 10% to the end: {m['growth_mb']:+.1f} MB (fitted slope {slope}).",
        ]
    )


# --- main --------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="the photo the test images are made from")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), help="WxH of the test photos")
    parser.add_argument("--models", nargs="*", default=["personseg-default", "personseg-fast"])
    parser.add_argument(
        "--mediapipe", default=str(DEFAULT_MEDIAPIPE), help="MediaPipe selfie .tflite run as the peer ('' to skip)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per model and size")
    parser.add_argument("--folder-images", type=int, default=1000, help="images in the memory run (0 skips it)")
    parser.add_argument("--folder-model", default="personseg-default", help="model for the memory run")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    for size in args.sizes:
        try:
            parse_size(size)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
    if args.threads < 1 or args.repeats < 1 or args.folder_images < 0:
        parser.error("--threads and --repeats must be >= 1, --folder-images >= 0")
    if args.mediapipe and not Path(args.mediapipe).is_file():
        parser.error(f"--mediapipe {args.mediapipe}: file not found ('' to leave the peer out)")
    return args


def check_paths(args: argparse.Namespace, photo: np.ndarray) -> list[str]:
    """Notes on the staged path matching the CLI's, one per shipped model (checked on the first size)."""
    jpeg = test_jpeg(photo, *parse_size(args.sizes[0]))
    notes = []
    for name in args.models:
        model = personseg.load_model(name, providers="cpu", threads=args.threads)
        if not same_as_cli(model, jpeg, RemoveOptions()):
            notes.append(f"WARNING: {name}: the staged path's PNG differs from segment().cutout()'s")
    return notes


def upscale_note(photo: np.ndarray, sizes: list[str]) -> list[str]:
    """A caveat when test photos are enlarged: smoother than a camera's, so edges, PNG sizes and timings differ."""
    h, w = photo.shape[:2]
    scales = {size: max(sh / h, sw / w) for size in sizes for sw, sh in [parse_size(size)]}
    big = {size: f for size, f in scales.items() if f > 1.0}
    if not big:
        return []
    listed = ", ".join(f"{size} (x{f:.1f})" for size, f in big.items())
    return [
        f"Note: the photo is {w}x{h}, so these test photos are upscaled from it: {listed}. Upscaled photos are "
        "smoother than a camera's (softer edges, smaller PNGs); pass --photo with a larger photo to avoid it."
    ]


def write(path: Path | None, text: str) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def report(header: str, rows: list[dict], mem: dict | None, notes: list[str], repeats: int) -> str:
    parts = [header, ""]
    if rows:
        caption = f"End to end per image, JPEG bytes in memory -> cut-out PNG bytes, {repeats} runs after {WARMUP} "
        parts += [caption + f"warm-up runs; stages: {STAGE_NOTE}:", "", speed_table(rows), ""]
    if mem:
        parts += [memory_table(mem), ""]
    parts += notes
    return "\n".join(parts).rstrip() + "\n"


def main() -> int:
    args = parse_args()
    cv2.setNumThreads(args.threads)
    photo = read_image(args.photo).rgb
    header = header_line(args.threads, args.photo)
    mismatches = check_paths(args, photo)
    for line in mismatches:
        print(line, file=sys.stderr)
    notes = mismatches + (upscale_note(photo, args.sizes) if args.models or args.mediapipe else [])
    pipes = load_pipelines(args.models, args.mediapipe, args.threads)
    rows = speed(pipes, photo, args.sizes, args.repeats) if pipes else []
    mem = memory(photo, args.folder_images, args.folder_model, args.threads) if args.folder_images else None

    text = report(header, rows, mem, notes, args.repeats)
    print(text)
    write(args.markdown, text)
    write(args.json, json.dumps({"header": header, "notes": notes, "speed": rows, "memory": mem}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
