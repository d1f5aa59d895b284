"""Running the app on uvicorn: our own access log (:class:`~personseg.serve.middleware.AccessLog`) instead of
uvicorn's, and the one refusal the app never sees answered in JSON too.

A request uvicorn cannot parse (a Content-Length that is not a number, a malformed header) is refused by the
HTTP protocol layer before the app exists for it, with a plain-text 400. :func:`json_errors_protocol` wraps
uvicorn's protocol class so that this answer is ``{"error": "..."}`` like every other.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from typing import Any

from personseg.serve.middleware import AccessLog

BAD_REQUEST = "malformed HTTP request (a bad header such as Content-Length, or not HTTP/1.1)"


def json_errors_protocol(base: type | None = None) -> type:
    """``base`` (default: the protocol uvicorn would pick) answering its parse errors with a JSON 400."""
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        base = AutoHTTPProtocol

    class JsonErrorsProtocol(base):  # type: ignore[misc, valid-type]
        def send_400_response(self, msg: str) -> None:
            # The connection is closed right after, so bypassing the parser's own state is safe.
            body = json.dumps({"error": BAD_REQUEST}).encode()
            head = (
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head + body)
            self.transport.close()

    JsonErrorsProtocol.__name__ = JsonErrorsProtocol.__qualname__ = f"JsonErrors{base.__name__}"
    return JsonErrorsProtocol


def run(app: Any, host: str, port: int) -> int:
    """Serve ``app`` until SIGINT or SIGTERM; return how many HTTP requests it answered.

    Each request is logged once, at INFO on ``personseg.serve.access``; uvicorn's own access log is off and its
    other messages are shown from WARNING up. No ``Server`` header. A port that cannot be bound: uvicorn logs
    why and exits (status 3); any other failed start is an :class:`OSError`.
    """
    import uvicorn

    logged = AccessLog(app)
    config = uvicorn.Config(
        logged,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        http=json_errors_protocol(),
    )
    server = uvicorn.Server(config)
    with _signals_end_quietly():
        server.run()
    if not server.started:
        raise OSError(f"could not serve on {host}:{port} (the reason is logged above)")
    return logged.requests


@contextlib.contextmanager
def _signals_end_quietly() -> Iterator[None]:
    """After a graceful shutdown uvicorn re-raises the signal that asked for it, which would end the process
    (SIGTERM) or raise KeyboardInterrupt (SIGINT) before the caller can say anything: ignore that one echo."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
