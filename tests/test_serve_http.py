"""The server over real sockets (uvicorn in a thread): stalled and abandoned uploads, malformed requests.

TestClient hands the app whole bodies at once, so what happens while a body is (not) arriving needs a real
HTTP server: these are the cases a hostile client found (issue 15).
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
uvicorn = pytest.importorskip("uvicorn")

from personseg.serve.app import create_app  # noqa: E402
from personseg.serve.server import json_errors_protocol  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``create_app(**kwargs)`` served on 127.0.0.1 by uvicorn in a daemon thread."""

    def __init__(self, **kwargs) -> None:
        self.app = create_app("personseg-fast", threads=1, **kwargs)
        self.port = free_port()
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", http=json_errors_protocol()
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data

    def stalled_upload(self, length: int = 100_000, sent: bytes = b"x" * 100) -> socket.socket:
        """A connection that sends headers and the start of a body, then nothing."""
        sock = socket.create_connection(("127.0.0.1", self.port))
        head = f"POST /v1/remove HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: {length}\r\n\r\n"
        sock.sendall(head.encode() + sent)
        return sock


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def status_line(sock: socket.socket, timeout: float) -> str:
    sock.settimeout(timeout)
    try:
        return sock.recv(4096).split(b"\r\n")[0].decode()
    except OSError as exc:
        return repr(exc)


def test_stalled_uploads_hold_no_slot_and_are_dropped_at_the_deadline(jpeg) -> None:
    with Server(workers=1, queue_size=1, body_timeout=2.0) as server:
        stalled = [server.stalled_upload() for _ in range(6)]  # three times the server's capacity
        time.sleep(0.3)
        start = time.monotonic()
        status, data = server.request("POST", "/v1/remove", jpeg, {"Content-Type": "image/jpeg"})
        assert status == 200, data
        assert time.monotonic() - start < 2.0  # served at once, not after the stalled ones time out
        health = json.loads(server.request("GET", "/health")[1])
        assert health["status"] == "ok" and health["in_flight"] == 0 and health["upload_bytes"] == 600
        answers = {status_line(sock, 10) for sock in stalled}
        assert answers == {"HTTP/1.1 408 Request Timeout"}
        for sock in stalled:
            sock.close()
        assert json.loads(server.request("GET", "/health")[1])["upload_bytes"] == 0


def test_clients_that_leave_mid_upload_log_one_line_each(caplog, jpeg) -> None:
    with caplog.at_level(logging.INFO), Server() as server:
        for _ in range(3):
            sock = server.stalled_upload(sent=b"x" * 5000)
            time.sleep(0.1)
            sock.close()
        sock = socket.create_connection(("127.0.0.1", server.port))
        body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n' + b"x" * 5000
        head = "POST /v1/mask HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        sock.sendall(f"{head}Content-Length: 100000\r\n\r\n".encode() + body)
        time.sleep(0.1)
        sock.close()
        deadline = time.monotonic() + 10
        while caplog.text.count("client disconnected during the upload") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.request("POST", "/v1/remove", jpeg, {"Content-Type": "image/jpeg"})[0] == 200
    assert caplog.text.count("client disconnected during the upload") == 4
    assert "Traceback" not in caplog.text and "Exception in ASGI" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("length", [b"abc", b"-5", b"1e6"])
def test_a_malformed_content_length_gets_a_json_400(length) -> None:
    with Server() as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"POST /v1/remove HTTP/1.1\r\nHost: t\r\nContent-Length: " + length + b"\r\n\r\nxx")
        sock.settimeout(10)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head.lower()
    assert "malformed" in json.loads(body)["error"]


def test_bodies_in_memory_are_bounded_and_freed(jpeg) -> None:
    # capacity 1 x 100 kB: 90 kB sent by a stalled upload leave no room for 20 kB more, until it is dropped.
    with Server(workers=1, queue_size=0, max_upload_bytes=100_000, body_timeout=1.5) as server:
        sock = server.stalled_upload(length=100_000, sent=b"x" * 90_000)
        time.sleep(0.3)
        status, data = server.request("POST", "/v1/remove", b"x" * 20_000, {"Content-Type": "image/png"})
        assert status == 503 and "too many uploads" in json.loads(data)["error"]
        assert status_line(sock, 10) == "HTTP/1.1 408 Request Timeout"
        sock.close()
        assert server.request("POST", "/v1/remove", jpeg, {"Content-Type": "image/jpeg"})[0] == 200
