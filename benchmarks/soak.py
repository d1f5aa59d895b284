"""Soak test of ``personseg serve``: many requests from concurrent clients, bad ones mixed in, memory watched.

Starts the server in a subprocess on 127.0.0.1, sends ``--requests`` requests from ``--clients`` threads; about
one in four is bad (truncated image, wrong Content-Type, oversize body with and without Content-Length, empty
body, a PNG header claiming 40000 x 40000 pixels) and must get a 4xx, while every good one must get a 200 PNG.
Reports p50/p95 latency, errors and the server's RSS after the first 50 requests and after the run, as a
markdown table; exits 1 if any response was wrong or RSS grew more than ``--max-growth-mb``.

    python benchmarks/soak.py --requests 1000 --clients 8
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "src" / "personseg" / "assets"


@dataclass
class Result:
    kind: str
    good: bool
    status: int  # 0: no HTTP response (connection error)
    seconds: float
    note: str = ""


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def make_requests(n: int, size: tuple[int, int], max_upload: int, seed: int) -> list[tuple[str, bool, dict]]:
    """(kind, is_good, httpx.request kwargs) for ``n`` requests, about 1 in 4 bad, in a fixed random order."""
    photo = Image.open(ASSETS / "astronaut.png").convert("RGB").resize(size, Image.BILINEAR)
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()

    def oversize_stream():
        for _ in range(max_upload // 65536 + 2):
            yield b"\0" * 65536

    bad = {
        "truncated": lambda: {"content": jpeg[: len(jpeg) // 3], "headers": {"content-type": "image/jpeg"}},
        "wrong-type": lambda: {"content": jpeg, "headers": {"content-type": "text/plain"}},
        "oversize": lambda: {"content": b"\0" * (max_upload + 1), "headers": {"content-type": "image/png"}},
        "oversize-chunked": lambda: {"content": oversize_stream(), "headers": {"content-type": "image/png"}},
        "empty": lambda: {"content": b"", "headers": {"content-type": "image/png"}},
        "bomb-40000px": lambda: {"content": png_header(40000, 40000), "headers": {"content-type": "image/png"}},
    }
    good = {
        "remove-multipart": lambda: {"files": {"file": ("photo.jpg", jpeg, "image/jpeg")}},
        "remove-raw": lambda: {"content": jpeg, "headers": {"content-type": "image/jpeg"}},
    }
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 4 == 3:
            kind = rng.choice(sorted(bad))
            out.append((kind, False, bad[kind]()))
        else:
            kind = rng.choice(sorted(good))
            out.append((kind, True, good[kind]()))
    return out


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, port: int, log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "personseg", "serve", "--port", str(port), "--model", args.model, "--no-ui"]
    cmd += ["--workers", str(args.workers), "--queue-size", str(args.queue_size)]
    cmd += ["--max-upload-mb", str(args.max_upload_mb)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not answer /health within 120 s")


def send(client: httpx.Client, kind: str, good: bool, kwargs: dict) -> Result:
    start = time.perf_counter()
    try:
        r = client.post("/v1/remove", **kwargs)
    except httpx.HTTPError as exc:
        return Result(kind, good, 0, time.perf_counter() - start, type(exc).__name__)
    seconds = time.perf_counter() - start
    note = ""
    if good and r.status_code == 200 and not r.content.startswith(b"\x89PNG"):
        note = "200 but not a PNG"
    elif not good and r.status_code >= 400 and "error" not in r.text:
        note = "error without a JSON message"
    return Result(kind, good, r.status_code, seconds, note)


def run_batch(base: str, requests: list, clients: int) -> list[Result]:
    local = threading.local()

    def one(item: tuple) -> Result:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base, timeout=120)
        return send(local.client, *item)

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, requests))


def ok(r: Result) -> bool:
    return not r.note and ((r.good and r.status == 200) or (not r.good and 400 <= r.status < 500))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def describe_machine() -> str:
    system = f"{platform.system()} {platform.release()}"
    return f"{machine()}, {system}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="total requests (default: 1000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default: 8)")
    parser.add_argument("--model", default="personseg-fast", help="model the server loads (default: personseg-fast)")
    parser.add_argument("--size", default="320x240", help="good photo size WxH (default: 320x240)")
    parser.add_argument("--workers", type=int, default=2, help="server inference threads (default: 2)")
    parser.add_argument("--queue-size", type=int, default=16, help="server queue (default: 16)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per model (default: 1)")
    parser.add_argument("--max-upload-mb", type=float, default=2.0, help="server upload limit (default: 2)")
    parser.add_argument("--max-growth-mb", type=float, default=50.0, help="fail if RSS grows more (default: 50)")
    parser.add_argument("--warmup", type=int, default=50, help="requests before the first RSS reading (default: 50)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    max_upload = int(args.max_upload_mb * 2**20)
    requests = make_requests(args.requests, (width, height), max_upload, args.seed)

    port = free_port()
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"personseg-soak-{port}.log"
    server = start_server(args, port, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        results = run_batch(base, requests[: args.warmup], args.clients)
        rss_warm = rss_mb(server.pid)
        results += run_batch(base, requests[args.warmup :], args.clients)
        wall = time.perf_counter() - t0
        rss_end = rss_mb(server.pid)
        alive = httpx.get(f"{base}/health", timeout=5).status_code == 200
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()

    good = [r for r in results if r.good]
    bad = [r for r in results if not r.good]
    wrong = [r for r in results if not ok(r)]
    growth = rss_end - rss_warm
    rows = [
        ("machine", describe_machine()),
        (
            "server",
            f"personseg serve, {args.model}, {args.workers} workers x {args.threads} thread(s), "
            f"queue {args.queue_size}",
        ),
        (
            "requests / clients",
            f"{len(results)} / {args.clients} ({len(good)} good {width}x{height} JPEG, {len(bad)} bad)",
        ),
        ("good -> 200", f"{sum(r.status == 200 and not r.note for r in good)} / {len(good)}"),
        ("bad -> 4xx", f"{sum(400 <= r.status < 500 and not r.note for r in bad)} / {len(bad)}"),
        ("wrong responses (errors)", str(len(wrong))),
        (
            "latency good p50 / p95",
            f"{pct([r.seconds for r in good], 50):.0f} / {pct([r.seconds for r in good], 95):.0f} ms",
        ),
        (
            "latency bad p50 / p95",
            f"{pct([r.seconds for r in bad], 50):.0f} / {pct([r.seconds for r in bad], 95):.0f} ms",
        ),
        ("throughput", f"{len(results) / wall:.1f} requests/s ({wall:.0f} s)"),
        (f"server RSS after {args.warmup} requests", f"{rss_warm:.0f} MB"),
        ("server RSS after the run", f"{rss_end:.0f} MB"),
        ("RSS growth", f"{growth:+.1f} MB (limit {args.max_growth_mb:g} MB)"),
        ("server alive after the run", "yes" if alive else "NO"),
    ]
    print("| metric | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    by_kind: dict[str, list[int]] = {}
    for r in results:
        by_kind.setdefault(r.kind, []).append(r.status)
    print("\n| request kind | count | statuses |\n| --- | --- | --- |")
    for kind, statuses in sorted(by_kind.items()):
        counts = ", ".join(f"{s or 'no response'}: {statuses.count(s)}" for s in sorted(set(statuses)))
        print(f"| {kind} | {len(statuses)} | {counts} |")
    for r in wrong[:10]:
        print(f"wrong: {r.kind} -> {r.status} {r.note}", file=sys.stderr)
    failed = bool(wrong) or growth > args.max_growth_mb or not alive
    if failed:
        print(f"\nFAILED (server log: {log_path})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
