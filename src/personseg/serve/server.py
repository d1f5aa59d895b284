"""Running the app on uvicorn, with the one refusal the app never sees answered in JSON too.

A request uvicorn cannot parse (a Content-Length that is not a number, a malformed header) is refused by the
HTTP protocol layer before the app exists for it, with a plain-text 400. :func:`json_errors_protocol` wraps
uvicorn's protocol class so that this answer is ``{"error": "..."}`` like every other.
"""

from __future__ import annotations

import json
from typing import Any

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


def run(app: Any, host: str, port: int) -> None:
    """Serve ``app`` until interrupted (uvicorn logs only warnings; no ``Server`` header)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False, http=json_errors_protocol())
