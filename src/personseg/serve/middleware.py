"""ASGI middleware of the API: the API key (401) and the guard on request bodies (size 413, memory 503,
deadline 408), all answering JSON errors; and the access log (:class:`AccessLog`, one line per request).

Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, so the body is refused while it streams in: by
Content-Length before anything is read, else by counting the bytes that arrive.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
from collections.abc import Callable

from starlette.requests import ClientDisconnect

log = logging.getLogger(__name__)
#: One line per request (``personseg serve`` shows it by default).
access_log = logging.getLogger("personseg.serve.access")

#: Paths served without the API key (load-balancer probes).
PUBLIC_PATHS = ("/health", "/ready")


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


class _BodyTimeout(Exception):
    pass


class _UploadsFull(Exception):
    pass


class UploadBudget:
    """The bytes of request bodies held at once, read or being read (counted on the event loop only).

    A request is charged the bytes that arrive, as they arrive (not its Content-Length: a claim costs nothing
    to make), and gives them back when it ends. Bytes, not connections, are counted: a stalled upload costs the
    little it sent, so many of them cannot lock the API out, while memory in bodies stays bounded by
    ``max_bytes`` (plus one network chunk per connection).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.held = 0

    def take(self, nbytes: int) -> bool:
        if self.held + nbytes > self.max_bytes:
            return False
        self.held += nbytes
        return True

    def give_back(self, nbytes: int) -> None:
        self.held -= nbytes


class BodyLimitMiddleware:
    """Guards request bodies while they stream in, each refusal a JSON error:

    * 400 for a Content-Length that is not a number, 413 for a body over ``max_bytes`` (from Content-Length
      before reading, else by counting what arrives);
    * 503 when the bodies in memory would exceed ``budget`` (:class:`UploadBudget`);
    * 408 when the body is not complete ``body_timeout`` seconds after the request began (a stalled or very
      slow upload: the connection is closed and everything it held is freed);
    * a client that disconnects mid-upload gets one INFO line in the log, not a traceback.
    """

    def __init__(
        self, app: Callable, max_bytes: int, budget: UploadBudget | None = None, body_timeout: float | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.budget = budget
        self.body_timeout = body_timeout
        self.message = f"upload over the limit of {max_bytes:,} bytes ({max_bytes / 2**20:.1f} MiB; --max-upload-mb)"

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        close = [(b"connection", b"close")]
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and not length.strip().isdigit():
            return await _send_json(send, 400, "Content-Length must be a whole number of bytes", close)
        if length is not None and int(length) > self.max_bytes:
            return await _send_json(send, 413, self.message, close)
        loop = asyncio.get_running_loop()
        deadline = None if self.body_timeout is None else loop.time() + self.body_timeout
        received = charged = 0
        body_done = started = False

        def charge(total: int) -> None:
            nonlocal charged
            if self.budget is not None and total > charged:
                if not self.budget.take(total - charged):
                    raise _UploadsFull
                charged = total

        async def guarded_receive() -> dict:
            nonlocal received, body_done
            if body_done or deadline is None:  # after the body, receive only waits for a disconnect
                message = await receive()
            else:
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    raise _BodyTimeout from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
                charge(received)
                body_done = not message.get("more_body", False)
            elif message["type"] == "http.disconnect" and not body_done:
                raise ClientDisconnect
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        where = f"{scope.get('method', '')} {scope.get('path', '')}"
        try:
            await self.app(scope, guarded_receive, tracking_send)
        except _UploadsFull:
            if started:
                raise
            busy = "server busy: too many uploads in progress; retry shortly"
            await _send_json(send, 503, busy, [(b"retry-after", b"1"), *close])
        except _BodyTooLarge:
            if started:
                raise
            await _send_json(send, 413, self.message, close)
        except _BodyTimeout:
            log.info(
                "%s: upload not complete after %g s (%d bytes received): dropped", where, self.body_timeout, received
            )
            if not started:
                message = f"upload not complete within {self.body_timeout:g} s (--body-timeout); send it faster"
                await _send_json(send, 408, message, close)
        except ClientDisconnect:
            log.info("%s: client disconnected during the upload (%d bytes received)", where, received)
        finally:
            if self.budget is not None:
                self.budget.give_back(charged)


#: Static files of the web UI and the docs: a page load fetches ~80 of them, logged only at DEBUG when served.
STATIC_PREFIXES = ("/ui/assets/", "/ui/static/", "/ui/theme.css", "/docs-assets/")


class AccessLog:
    """One line per HTTP request on ``personseg.serve.access`` once its answer is sent (or abandoned): client,
    method, path, status, milliseconds and response bytes, e.g. ``127.0.0.1 POST /v1/remove 200 412 ms 48213
    bytes``. ``requests`` counts them (for the shutdown line).

    At INFO, except static files served under ``static_prefixes`` (DEBUG). It wraps the whole app, so refusals
    by the other middleware (401, 408, 413, 503) are logged too. The status is ``-`` when the client left
    before an answer started. The query string is left out (paths only).
    """

    def __init__(self, app: Callable, static_prefixes: tuple[str, ...] = STATIC_PREFIXES) -> None:
        self.app = app
        self.static_prefixes = static_prefixes
        self.requests = 0

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.requests += 1
        loop = asyncio.get_running_loop()
        began = loop.time()
        status: int | str = "-"
        sent = 0

        async def counting_send(message: dict) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            if status == "-":
                status = 500  # what the server answers for an exception before the response started
            raise
        finally:
            client = (scope.get("client") or ("-",))[0]
            ms = (loop.time() - began) * 1000
            path = scope["path"]
            static = path.startswith(self.static_prefixes) and isinstance(status, int) and status < 400
            level = logging.DEBUG if static else logging.INFO
            access_log.log(level, "%s %s %s %s %.0f ms %d bytes", client, scope["method"], path, status, ms, sent)
