"""ASGI middleware of the API: the API key (401) and the upload-size cap (413), both answering JSON errors.

Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, so the body is refused while it streams in: by
Content-Length before anything is read, else by counting the bytes that arrive.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable

#: Paths served without the API key (load-balancer probes).
PUBLIC_PATHS = ("/health",)


async def _send_json(send: Callable, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + list(headers)})
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware:
    """Every path but :data:`PUBLIC_PATHS` needs the key: ``X-API-Key``, ``Authorization: Bearer`` or, for
    browsers (the UI, /docs), HTTP Basic with the key as the password (any user name)."""

    def __init__(self, app: Callable, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        candidates = [headers.get(b"x-api-key", b"")]
        scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer":
            candidates.append(value.strip())
        elif scheme.lower() == b"basic":
            try:
                candidates.append(base64.b64decode(value.strip(), validate=True).partition(b":")[2])
            except ValueError:
                pass
        # compare_digest on every candidate: no early exit that would time the key.
        return any([hmac.compare_digest(c, self._key) for c in candidates])

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        if self._authorized(dict(scope["headers"])):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        # API clients get a Bearer challenge; a browser on /ui or /docs gets Basic, so it asks for the key.
        challenge = b"Bearer" if scope["path"].startswith("/v1/") else b'Basic realm="personseg"'
        message = "missing or wrong API key: send it as X-API-Key or Authorization: Bearer"
        await _send_json(send, 401, message, [(b"www-authenticate", challenge)])


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``: from Content-Length before reading, else by counting what arrives."""

    def __init__(self, app: Callable, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = f"upload over the limit of {max_bytes:,} bytes ({max_bytes / 2**20:.1f} MiB; --max-upload-mb)"

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await _send_json(send, 413, self.message, [(b"connection", b"close")])
        received = 0
        started = False

        async def counting_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await _send_json(send, 413, self.message, [(b"connection", b"close")])
