"""Ray's overhead on one machine: ``personseg remove --ray`` against the plain ``personseg remove``.

Both run as child processes on the same ``--images`` generated 640x480 JPEGs (photo_bench's generator: random
crops of a bundled photo with random brightness and grain) and write the cut-out PNG of each. The plain path
runs once one image at a time with ONNX Runtime on ``--threads`` threads (``--jobs 1``), and once with
``--jobs THREADS`` images at a time on one thread each; the Ray path starts a local Ray instance with this
machine's CPUs and one single-threaded actor per CPU. Wall time covers everything the user waits for
(Ray's start and stop included, and measured apart: ``ray.init`` + shutdown alone). Memory: VmRSS of every process
in the child's tree, read from /proc every 0.2 s; the driver's peak, the peak of the largest worker and the peak
of the whole tree.

    .venv/bin/python benchmarks/ray_bench.py --images 2000 --threads 2 --markdown results/ray_bench.md
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine  # noqa: E402
from photo_bench import make_folder, rss_mb  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "src" / "personseg" / "assets"
SAMPLE_EVERY_S = 0.2


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/*/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def run_measured(cmd: list[str]) -> dict:
    """Wall time and memory peaks (MB) of ``cmd`` and its descendants."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks = {"driver": 0.0, "worker": 0.0, "tree": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            total = 0.0
            for pid in tree(child.pid):
                rss = rss_mb(pid)
                if rss is None:
                    continue
                total += rss[0]
                if pid == child.pid:
                    peaks["driver"] = max(peaks["driver"], rss[0])
                elif "RemoveActor" in cmdline(pid):
                    peaks["worker"] = max(peaks["worker"], rss[0])
            peaks["tree"] = max(peaks["tree"], total)
            stop.wait(SAMPLE_EVERY_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = child.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({child.returncode}): {err[-2000:]}")
    return {"wall": wall, **peaks, "summary": err.strip().splitlines()[-1] if err.strip() else ""}


def ray_start_stop(threads: int) -> float:
    code = (
        "import ray, time; t = time.perf_counter(); "
        f"ray.init(num_cpus={threads}, include_dashboard=False, log_to_driver=False); ray.shutdown(); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="personseg-fast")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="personseg-ray-bench-"))
    try:
        photos = work / "photos"
        make_folder(photos, args.images, np.asarray(Image.open(ASSETS / "grace_hopper.jpg").convert("RGB")))
        base = [sys.executable, "-m", "personseg", "remove", str(photos), "--model", args.model]
        base += ["--outputs", "cutout", "-q"]
        plain = run_measured(base + ["-o", str(work / "plain"), "--jobs", "1", "--threads", str(args.threads)])
        jobs = run_measured(base + ["-o", str(work / "jobs"), "--jobs", str(args.threads)])
        ray_cmd = base + ["-o", str(work / "ray"), "--ray", "--actors", str(args.threads), "--cpus-per-actor", "1"]
        # The local Ray takes all of this machine's CPUs (2 here: the same as --threads).
        on_ray = run_measured(ray_cmd)
        startup = ray_start_stop(args.threads)
        same = sum(
            (work / "plain" / p.name).read_bytes() == p.read_bytes() for p in (work / "ray").glob("*_cutout.png")
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = args.images
    rows = [
        f"Machine: {machine()}; {args.threads} CPUs for both paths; {n} generated 640x480 JPEGs -> cut-out PNGs; "
        f"model {args.model}. Ray {__import__('ray').__version__}, local instance, {args.threads} actors x 1 thread.",
        "",
        "| path | wall (s) | images/s | driver peak MB | largest worker peak MB | all processes peak MB |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| personseg remove --jobs 1 --threads {args.threads} (one image at a time) | {plain['wall']:.1f} | "
        f"{n / plain['wall']:.1f} | {plain['driver']:.0f} | - | {plain['tree']:.0f} |",
        f"| personseg remove --jobs {args.threads} (the default here: images in parallel, 1 thread each) | "
        f"{jobs['wall']:.1f} | {n / jobs['wall']:.1f} | {jobs['driver']:.0f} | - | {jobs['tree']:.0f} |",
        f"| personseg remove --ray (local) | {on_ray['wall']:.1f} | {n / on_ray['wall']:.1f} | "
        f"{on_ray['driver']:.0f} | {on_ray['worker']:.0f} | {on_ray['tree']:.0f} |",
        "",
        f"Ray throughput = {jobs['wall'] / on_ray['wall']:.0%} of the plain path's with --jobs "
        f"({plain['wall'] / on_ray['wall']:.0%} of one image at a time); Ray's start + stop alone: {startup:.1f} s. "
        f"Outputs byte-identical: {same} of {n}.",
    ]
    text = "\n".join(rows)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
