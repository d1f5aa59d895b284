"""What the server logs: one access line per request (not uvicorn's), and a last line with the count on shutdown.

The access log through TestClient (lines and their fields), then ``personseg serve`` itself in a subprocess,
stopped by a signal, to see what a user sees on stderr by default.
"""

from __future__ import annotations

import io
import logging
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
from fastapi.testclient import TestClient  # noqa: E402

from personseg.serve.app import create_app  # noqa: E402
from personseg.serve.middleware import AccessLog  # noqa: E402

LINE = re.compile(
    r"(?P<client>\S+) (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}|-) (?P<ms>\d+) ms (?P<bytes>\d+) bytes"
)


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def access_lines(caplog) -> list[re.Match]:
    return [LINE.fullmatch(r.getMessage()) for r in caplog.records if r.name == "personseg.serve.access"]


def test_one_access_line_per_request_with_status_time_and_bytes(caplog, jpeg) -> None:
    app = AccessLog(create_app("personseg-fast", threads=1, api_key="k", max_upload_bytes=100_000))
    with caplog.at_level(logging.INFO, logger="personseg.serve"), TestClient(app) as client:
        health = client.get("/health")
        refused = client.post("/v1/remove?format=png", content=jpeg, headers={"Content-Type": "image/jpeg"})
        too_big = client.post("/v1/remove", content=b"x" * 200_000, headers={"X-API-Key": "k"})
        done = client.post("/v1/remove", content=jpeg, headers={"Content-Type": "image/jpeg", "X-API-Key": "k"})
    assert [health.status_code, refused.status_code, too_big.status_code, done.status_code] == [200, 401, 413, 200]
    lines = access_lines(caplog)
    assert all(lines), [r.getMessage() for r in caplog.records]
    assert [(m["method"], m["path"], m["status"]) for m in lines] == [
        ("GET", "/health", "200"),
        ("POST", "/v1/remove", "401"),  # the path only: no query string in the log
        ("POST", "/v1/remove", "413"),
        ("POST", "/v1/remove", "200"),
    ]
    sizes = [len(r.content) for r in (health, refused, too_big, done)]
    assert [int(m["bytes"]) for m in lines] == sizes
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "personseg.serve.access")
    assert app.requests == 4


def test_an_exception_in_the_app_is_logged_as_500(caplog) -> None:
    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    app = AccessLog(broken)
    with caplog.at_level(logging.INFO, logger="personseg.serve"), pytest.raises(RuntimeError):
        TestClient(app).get("/x")
    [line] = access_lines(caplog)
    assert (line["method"], line["path"], line["status"], line["bytes"]) == ("GET", "/x", "500", "0")
    assert app.requests == 1


def test_static_files_are_logged_only_at_debug(caplog) -> None:
    async def files(scope, receive, send):
        status = 404 if scope["path"].endswith("missing.js") else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 10})

    app = AccessLog(files)
    with caplog.at_level(logging.DEBUG, logger="personseg.serve"):
        client = TestClient(app)
        for path in ("/ui/assets/index.js", "/docs-assets/swagger-ui.css", "/ui/assets/missing.js", "/ui/"):
            client.get(path)
    levels = {r.getMessage().split()[2]: r.levelname for r in caplog.records if r.name == "personseg.serve.access"}
    assert levels == {
        "/ui/assets/index.js": "DEBUG",
        "/docs-assets/swagger-ui.css": "DEBUG",
        "/ui/assets/missing.js": "INFO",  # a missing file is worth seeing
        "/ui/": "INFO",
    }
    assert app.requests == 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_personseg_serve_logs_requests_by_default_and_a_shutdown_line(tmp_path, stop) -> None:
    pytest.importorskip("uvicorn")
    port = free_port()
    cmd = [sys.executable, "-m", "personseg", "serve", "--no-ui", "--port", str(port), "--threads", "1"]
    cmd += ["--model", "personseg-fast"]
    err = tmp_path / "stderr.txt"
    with open(err, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as r:
            r.read()
        proc.send_signal(stop)
        assert proc.wait(20) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.read_text()
    # Health polls before the server was up never reached it: count what the log says, it must agree.
    requests = [line for line in text.splitlines() if line.startswith("INFO personseg.serve.access: ")]
    assert len(requests) >= 2
    assert re.search(r"127\.0\.0\.1 GET /v1/models 200 \d+ ms \d+ bytes$", requests[-1])
    assert text.rstrip().endswith(f"personseg serve: stopped after {len(requests)} requests"), text
    # uvicorn's own lines (access log, "Started server process", "Uvicorn running on") stay out.
    assert "uvicorn" not in text.lower() and '"GET /health HTTP/1.1"' not in text
    assert "Traceback" not in text and "interrupted" not in text
