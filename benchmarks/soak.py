"""Soak test of ``personseg serve``: many requests from concurrent clients, bad ones mixed in, memory watched.

Starts the server in a subprocess on 127.0.0.1, sends ``--requests`` requests from ``--clients`` threads; about
one in four is bad (truncated image, wrong Content-Type, oversize body with and without Content-Length, empty
body, a PNG header claiming 40000 x 40000 pixels) and must get a 4xx, while every good one must get a 200 PNG.
Reports p50/p95 latency, errors and the server's RSS after the first 50 requests and after the run, as a
markdown table; exits 1 if any response was wrong or RSS grew more than ``--max-growth-mb``.

Alongside the normal requests (after the warm-up), one more client sends the hostile cases of issue 15, in turn:

* a 90 MP PNG (9500 x 9500 black, ~87 KB), plain and with ``feather=100``: a 200 PNG or a 413 within 5 s
  (``--huge-limit-s``, queue wait included), the server's peak RSS (VmHWM) under 1.5 GB; a normal request is
  timed while each is in flight;
* ``--stalled`` raw-socket uploads (default 18: 2 workers + a queue of 16) that send headers and 100 bytes of
  body, then nothing: a normal request meanwhile must get a 200 within ``--body-timeout`` + 2 s, and each
  stalled one a 408 or a dropped connection within the same bound;
* ``--disconnects`` raw-socket uploads that send half the body and close (every other one with a reset).

The server log (stdout and stderr) must hold no traceback. ``--no-hostile`` runs the normal soak alone.

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


def photo_jpeg(size: tuple[int, int]) -> bytes:
    """The good request's body: the bundled photo resized to ``size``, as a JPEG."""
    photo = Image.open(ASSETS / "astronaut.png").convert("RGB").resize(size, Image.BILINEAR)
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_requests(n: int, size: tuple[int, int], max_upload: int, seed: int) -> list[tuple[str, bool, dict]]:
    """(kind, is_good, httpx.request kwargs) for ``n`` requests, about 1 in 4 bad, in a fixed random order."""
    jpeg = photo_jpeg(size)

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


def huge_png() -> bytes:
    """The issue's 90 MP PNG: 9500 x 9500 black, ~87 KB at compress level 9 (under the default pixel limit)."""
    buf = io.BytesIO()
    Image.new("L", (9500, 9500)).save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def proc_kb(pid: int, field: str) -> float:
    """A ``/proc/PID/status`` field in MB (VmRSS: resident now, VmHWM: peak resident so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def raw_head(port: int, length: int, content_type: str = "image/jpeg") -> bytes:
    return (
        f"POST /v1/remove HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def read_status(sock: socket.socket) -> int:
    """The HTTP status the server sent on ``sock``; 0 when it closed or reset the connection without one,
    -1 when nothing came before the socket's timeout."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        return -1
    except OSError:
        return 0
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


@dataclass
class Hostile:
    results: list[Result]
    huge_peak_mb: float = float("nan")  # server VmHWM right after the 90 MP requests
    huge_probe_s: list[float] | None = None  # normal requests sent while a 90 MP one was in flight
    stall_probe_s: float = float("nan")  # a normal request while the stalled uploads held their connections
    stall_answer_s: list[float] | None = None  # from a stalled upload's first bytes to its 408 / drop


def run_hostile(base: str, port: int, pid: int, args: argparse.Namespace, jpeg: bytes, huge: bytes) -> Hostile:
    """The issue-15 cases, sent while the normal soak runs: a 90 MP PNG (plain and ``feather=100``), stalled
    uploads, then clients that disconnect mid-upload. Each Result's ``note`` is empty when it behaved."""
    out = Hostile([], huge_probe_s=[], stall_answer_s=[])
    limit = args.body_timeout + 2

    def probe(client: httpx.Client) -> Result:
        r = send(client, "probe", True, {"content": jpeg, "headers": {"content-type": "image/jpeg"}})
        if r.status != 200 and not r.note:
            r.note = f"normal request got {r.status}"
        return r

    with httpx.Client(base_url=base, timeout=120) as client, httpx.Client(base_url=base, timeout=120) as other:
        # 1. the 90 MP PNG: a result or 413 within 5 s; a normal request sent meanwhile is timed
        for query in ("", "?feather=100"):
            with ThreadPoolExecutor(1) as pool:
                kwargs = {"content": huge, "headers": {"content-type": "image/png"}}
                future = pool.submit(send, client, f"huge-90mp{query}", False, kwargs)
                time.sleep(0.1)
                p = probe(other)
                out.huge_probe_s.append(p.seconds)
                r = future.result()
            r.kind = "huge-90mp" + (" feather=100" if query else "")
            if r.status not in (200, 413):
                r.note = r.note or f"expected 200 or 413, got {r.status}"
            elif r.seconds > args.huge_limit_s:
                r.note = f"answered in {r.seconds:.1f} s (limit {args.huge_limit_s:g} s)"
            p.kind = "normal during 90 MP"
            out.results += [r, p]
        out.huge_peak_mb = proc_kb(pid, "VmHWM")

        # 2. stalled uploads: headers + 100 bytes of a longer body, then nothing
        stalled = []
        for _ in range(args.stalled):
            s = socket.create_connection(("127.0.0.1", port), timeout=limit + 10)
            s.sendall(raw_head(port, len(jpeg)) + jpeg[:100])
            stalled.append((s, time.perf_counter()))
        p = probe(other)
        p.kind = f"normal during {args.stalled} stalled"
        if p.status == 200 and p.seconds > limit:
            p.note = f"200 after {p.seconds:.1f} s (limit {limit:g} s)"
        out.stall_probe_s = p.seconds
        out.results.append(p)
        for s, t0 in stalled:
            status = read_status(s)
            seconds = time.perf_counter() - t0
            s.close()
            out.stall_answer_s.append(seconds)
            r = Result("stalled-upload", False, max(status, 0), seconds)
            if status not in (408, 0):
                r.note = "no answer" if status < 0 else f"expected 408 or a drop, got {status}"
            elif seconds > limit:
                r.note = f"held {seconds:.1f} s (limit {limit:g} s)"
            out.results.append(r)
        p = probe(other)  # the stalled slots are free again
        p.kind = "normal after stalled"
        out.results.append(p)

        # 3. mid-upload disconnects: half the body, then close (every other one with a reset)
        for i in range(args.disconnects):
            t0 = time.perf_counter()
            note = ""
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(raw_head(port, len(jpeg)) + jpeg[: len(jpeg) // 2])
                    time.sleep(0.1)
                    if i % 2:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError as exc:
                note = f"could not send: {exc}"
            out.results.append(Result("disconnect-mid-upload", False, 0, time.perf_counter() - t0, note))
        p = probe(other)
        p.kind = "normal after disconnects"
        out.results.append(p)
    return out


def start_server(args: argparse.Namespace, port: int, log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "personseg", "serve", "--port", str(port), "--model", args.model, "--no-ui"]
    cmd += ["--workers", str(args.workers), "--queue-size", str(args.queue_size)]
    cmd += ["--max-upload-mb", str(args.max_upload_mb), "--body-timeout", str(args.body_timeout)]
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
    parser.add_argument("--body-timeout", type=float, default=5.0, help="server --body-timeout in seconds (default: 5)")
    parser.add_argument(
        "--no-hostile",
        action="store_true",
        help="skip the issue-15 cases (90 MP PNG, stalled uploads, mid-upload disconnects)",
    )
    parser.add_argument(
        "--huge-limit-s",
        type=float,
        default=5.0,
        help="seconds the 90 MP PNG may take, queue wait included (default: 5)",
    )
    parser.add_argument("--stalled", type=int, default=18, help="stalled uploads held at once (default: 18)")
    parser.add_argument("--disconnects", type=int, default=12, help="mid-upload disconnects (default: 12)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    max_upload = int(args.max_upload_mb * 2**20)
    requests = make_requests(args.requests, (width, height), max_upload, args.seed)
    jpeg = photo_jpeg((width, height))
    huge = b"" if args.no_hostile else huge_png()

    port = free_port()
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"personseg-soak-{port}.log"
    server = start_server(args, port, log_path)
    base = f"http://127.0.0.1:{port}"
    hostile = None
    try:
        t0 = time.perf_counter()
        results = run_batch(base, requests[: args.warmup], args.clients)
        rss_warm = rss_mb(server.pid)
        with ThreadPoolExecutor(1) as side:  # the hostile cases run alongside the rest of the normal soak
            if not args.no_hostile:
                future = side.submit(run_hostile, base, port, server.pid, args, jpeg, huge)
            results += run_batch(base, requests[args.warmup :], args.clients)
            soak_wall = time.perf_counter() - t0
            if not args.no_hostile:
                hostile = future.result()
        wall = time.perf_counter() - t0
        rss_end = rss_mb(server.pid)
        rss_peak = proc_kb(server.pid, "VmHWM")
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
    hostile_results = hostile.results if hostile else []
    wrong += [r for r in hostile_results if r.note]
    growth = rss_end - rss_warm
    log_lines = log_path.read_text(errors="replace").splitlines()
    tracebacks = sum(line.startswith("Traceback") for line in log_lines)
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
        ("throughput (normal soak)", f"{len(results) / soak_wall:.1f} requests/s ({soak_wall:.0f} s)"),
        ("whole run, hostile cases included", f"{wall:.0f} s"),
        (f"server RSS after {args.warmup} requests", f"{rss_warm:.0f} MB"),
        ("server RSS after the run", f"{rss_end:.0f} MB"),
        ("server peak RSS (VmHWM)", f"{rss_peak:.0f} MB"),
        ("RSS growth", f"{growth:+.1f} MB (limit {args.max_growth_mb:g} MB)"),
        ("server alive after the run", "yes" if alive else "NO"),
    ]
    if hostile:
        huge_rs = [r for r in hostile.results if r.kind.startswith("huge-90mp")]
        stall_s = hostile.stall_answer_s or [float("nan")]
        rows += [
            (
                "90 MP PNG (9500x9500, 87 KB): status, time",
                ", ".join(
                    f"{r.kind.removeprefix('huge-90mp ') or 'plain'} {r.status} in {r.seconds:.2f} s" for r in huge_rs
                )
                + f" (limit {args.huge_limit_s:g} s)",
            ),
            ("server peak RSS after the 90 MP requests", f"{hostile.huge_peak_mb:.0f} MB (limit 1536 MB)"),
            (
                "normal request during a 90 MP one",
                " / ".join(f"{v:.2f}" for v in hostile.huge_probe_s or []) + " s",
            ),
            (
                f"normal request during {args.stalled} stalled uploads",
                f"{hostile.stall_probe_s:.2f} s (limit body timeout {args.body_timeout:g} + 2 s)",
            ),
            (
                "stalled uploads answered (408 / dropped) after",
                f"{min(stall_s):.1f}-{max(stall_s):.1f} s (limit {args.body_timeout + 2:g} s)",
            ),
            (
                "mid-upload disconnects",
                f"{sum(r.kind == 'disconnect-mid-upload' for r in hostile.results)}, "
                f"{sum('client disconnected during the upload' in line for line in log_lines)} log lines",
            ),
        ]
    rows += [
        ("hostile / probe requests wrong", str(sum(bool(r.note) for r in hostile_results))),
        ("server log: lines / tracebacks", f"{len(log_lines)} / {tracebacks}"),
    ]
    print("| metric | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    by_kind: dict[str, list[int]] = {}
    for r in results + hostile_results:
        by_kind.setdefault(r.kind, []).append(r.status)
    print("\n| request kind | count | statuses |\n| --- | --- | --- |")
    for kind, statuses in sorted(by_kind.items()):
        counts = ", ".join(f"{s or 'no response'}: {statuses.count(s)}" for s in sorted(set(statuses)))
        print(f"| {kind} | {len(statuses)} | {counts} |")
    for r in wrong[:10]:
        print(f"wrong: {r.kind} -> {r.status} {r.note}", file=sys.stderr)
    too_big = hostile is not None and hostile.huge_peak_mb > 1536
    failed = bool(wrong) or growth > args.max_growth_mb or not alive or tracebacks > 0 or too_big
    if failed:
        print(f"\nFAILED (server log: {log_path})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
