"""``create_app``: the HTTP API as a FastAPI app (``personseg serve`` runs it with uvicorn).

Routes: ``POST /v1/remove`` (cut-out, replaced background or mask), ``POST /v1/mask``, ``GET /v1/models``,
``GET /health`` and the OpenAPI docs at ``/docs``; the Gradio UI at ``/ui`` with ``with_ui=True``.

What keeps one process healthy under hostile input: uploads are capped by Content-Length *and* by counting
the streamed bytes (413); the image header is probed before anything is decoded, so a decompression bomb or a
non-image costs microseconds (413 / 415); only common raster formats are accepted (no EPS, which would run
Ghostscript); inference runs in a bounded thread pool behind a bounded queue, off the event loop, and a full
queue answers 503 at once instead of piling up memory; no URL given by a client is ever fetched. Every error
is JSON ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import json
import logging
import os
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from PIL import Image, ImageColor
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from personseg import __version__
from personseg.inference import registry
from personseg.inference.api import Segmenter, list_models, load_model
from personseg.inference.io import DEFAULT_MAX_PIXELS, ImageReadError, encode_image, read_image
from personseg.inference.remove import RemoveOptions, segment

log = logging.getLogger(__name__)

API_KEY_ENV = "PERSONSEG_API_KEY"
DEFAULT_MAX_UPLOAD_BYTES = 25 * 2**20
#: Formats the server decodes; others (EPS runs Ghostscript, PSD, ICO ...) are refused with 415.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
#: Paths served without the API key (load-balancer probes).
PUBLIC_PATHS = ("/health",)
MEDIA_TYPES = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg"}


# --- query options -----------------------------------------------------------------------------------------


class MaskQuery(BaseModel):
    """Options of ``/v1/mask``; the names follow ``personseg remove``'s flags."""

    model_config = ConfigDict(extra="forbid")  # a misspelt option is a 400, not silently ignored

    model: str | None = Field(None, description="a shipped model name (GET /v1/models); default: the server's")
    soft: bool = Field(True, description="soft alpha; false gives a hard 0/1 mask at `threshold` (CLI --hard)")
    threshold: float | None = Field(None, gt=0, lt=1, description="person/background cut (default: the model's)")
    edge_cutoff: float = Field(0.1, ge=0, lt=0.5, description="soft alpha below C -> 0, above 1-C -> 1")
    keep_largest: int = Field(0, ge=0, le=100, description="keep only the K largest people; 0 keeps all")
    fill_holes: float = Field(0.0, ge=0, le=1, description="fill holes smaller than this fraction of the image")
    feather: float = Field(0.0, ge=0, le=100, description="blur the mask edge by this many pixels")
    crop: bool = Field(False, description="crop to the people's bounding box")
    crop_margin: float = Field(0.05, ge=0, le=1, description="margin around the crop, fraction of the box")

    def remove_options(self, foreground: str = "blur") -> RemoveOptions:
        return RemoveOptions(
            soft=self.soft,
            threshold=self.threshold,
            edge_cutoff=self.edge_cutoff,
            keep_largest=self.keep_largest,
            fill_holes=self.fill_holes,
            feather=self.feather,
            crop=self.crop,
            crop_margin=self.crop_margin,
            foreground=foreground,
        )


class RemoveQuery(MaskQuery):
    """Options of ``/v1/remove``."""

    mask_only: bool = Field(False, description="return the mask (grey) instead of the cut-out")
    bgcolor: str | None = Field(
        None, description="put the person on this colour: R,G,B[,A], #RRGGBB[AA] or a name like white"
    )
    bg_blur: float | None = Field(None, gt=0, le=200, description="keep the background, blurred by SIGMA pixels")
    foreground: Literal["blur", "none"] = Field("blur", description="foreground colour estimation for edges")
    format: Literal["png", "webp", "jpg"] = Field("png", description="jpg has no alpha: default background white")

    @field_validator("bgcolor")
    @classmethod
    def _check_color(cls, value: str | None) -> str | None:
        if value is not None:
            parse_color(value)
        return value

    @property
    def color(self) -> tuple[int, ...] | None:
        return parse_color(self.bgcolor) if self.bgcolor is not None else None


def parse_color(text: str) -> tuple[int, ...]:
    """``R,G,B[,A]``, ``#RRGGBB[AA]`` or a CSS colour name -> a 3- or 4-tuple of 0..255."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        color = tuple(int(p) for p in parts) if len(parts) in (3, 4) else ImageColor.getrgb(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a colour: use R,G,B or R,G,B,A (0-255), #RRGGBB[AA] or a name") from None
    if not all(0 <= c <= 255 for c in color):
        raise ValueError(f"{text!r}: colour values must be in 0..255")
    return color


# --- middleware: API key and upload size --------------------------------------------------------------------


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


# --- models and the bounded worker pool ----------------------------------------------------------------------


class ModelError(ValueError):
    """A model name the server does not offer, or a model that failed to load."""


class ModelPool:
    """The default model plus shipped models loaded on first request, each once per process."""

    def __init__(self, model: Segmenter | str | os.PathLike | None, providers: Any, threads: int | None) -> None:
        self._providers, self._threads = providers, threads
        default = model if isinstance(model, Segmenter) else load_model(model, providers=providers, threads=threads)
        self.default_name = Path(default.source).stem if (model is None or isinstance(model, Segmenter)) else None
        if self.default_name is None:
            text = os.fspath(model)
            self.default_name = text if text in registry.SHIPPED_MODELS else Path(text).stem
        self._models: dict[str, Segmenter] = {self.default_name: default}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(dict.fromkeys([self.default_name, *list_models()]))

    def loaded(self, name: str) -> bool:
        return name in self._models

    def get(self, name: str | None) -> Segmenter:
        """The model called ``name`` (only the default or a shipped name: clients never name files)."""
        name = name or self.default_name
        if name not in self.names():
            raise ModelError(f"unknown model {name!r}; available: {', '.join(self.names())}")
        with self._lock:
            if name not in self._models:
                try:
                    self._models[name] = load_model(name, providers=self._providers, threads=self._threads)
                except (OSError, ValueError, KeyError) as exc:
                    raise ModelError(f"model {name!r} cannot be loaded: {exc}") from None
            return self._models[name]


class InferencePool:
    """``workers`` threads and room for ``queue_size`` more waiting requests; beyond that, 503 at once.

    The slot counter is touched only on the event loop. A slot is freed when its job *finishes* (not when
    the client goes away), so the count always matches the work the threads really have.
    """

    def __init__(self, workers: int, queue_size: int) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError(f"workers must be >= 1 and queue_size >= 0, got {workers} and {queue_size}")
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="personseg-infer")
        self.capacity = workers + queue_size
        self.in_flight = 0

    def reserve(self) -> None:
        if self.in_flight >= self.capacity:
            raise HTTPException(
                503, f"server busy: {self.in_flight} requests in progress; retry shortly", headers={"Retry-After": "1"}
            )
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    async def run(self, fn: Callable, *args: Any) -> Any:
        """Run ``fn`` in a worker thread for a reserved slot, which it frees when done."""
        loop = asyncio.get_running_loop()
        future = self.executor.submit(fn, *args)

        def done(_: Any) -> None:
            try:
                loop.call_soon_threadsafe(self.release)
            except RuntimeError:  # the loop is closed: the server is shutting down
                pass

        future.add_done_callback(done)
        return await asyncio.wrap_future(future)


# --- reading the upload -------------------------------------------------------------------------------------


def probe_image(data: bytes, max_pixels: int | None, what: str = "upload") -> None:
    """Refuse empty, non-image, unsupported-format and oversized images from the header alone."""
    if not data:
        raise HTTPException(400, f"{what}: empty body; send an image (multipart field 'file' or the raw bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as img:
                width, height = img.size
        except Image.DecompressionBombError as exc:
            raise HTTPException(413, f"{what}: image too large ({' '.join(str(exc).split())})") from None
        except Image.UnidentifiedImageError:
            formats = ", ".join(ACCEPTED_FORMATS)
            raise HTTPException(415, f"{what}: not an image in a supported format ({formats})") from None
        except Exception as exc:
            raise HTTPException(400, f"{what}: corrupt image header ({' '.join(str(exc).split())})") from None
    if max_pixels is not None and width * height > max_pixels:
        raise HTTPException(
            413, f"{what}: image is {width}x{height}, over the server's {max_pixels / 1e6:g} MP limit (--max-pixels)"
        )


async def read_upload(request: Request) -> tuple[bytes, bytes | None]:
    """(image bytes, optional background image bytes) from a multipart form or a raw image body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=2, max_fields=2)
        try:
            parts = {}
            for field in ("file", "background"):
                part = form.get(field)
                if part is not None and isinstance(part, str):
                    raise HTTPException(400, f"form field {field!r} must be a file upload, not text")
                parts[field] = await part.read() if part is not None else None
        finally:
            await form.close()
        if parts["file"] is None:
            raise HTTPException(400, "multipart upload without a 'file' field: send the image as field 'file'")
        return parts["file"], parts["background"]
    if content_type and not (content_type.startswith("image/") or content_type == "application/octet-stream"):
        raise HTTPException(
            415,
            f"Content-Type {content_type} is not an image: send multipart/form-data with field 'file', "
            "or the raw bytes as image/* or application/octet-stream",
        )
    return await request.body(), None


# --- rendering (in a worker thread) ---------------------------------------------------------------------------


def encode(array: np.ndarray, fmt: str) -> bytes:
    """PNG / JPEG through :func:`encode_image`; WebP (with alpha) through OpenCV."""
    if fmt != "webp":
        return encode_image(array, f".{fmt}")
    code = {4: cv2.COLOR_RGBA2BGRA, 3: cv2.COLOR_RGB2BGR}.get(array.shape[2] if array.ndim == 3 else 0)
    bgr = cv2.cvtColor(array, code) if code is not None else array
    ok, buf = cv2.imencode(".webp", np.ascontiguousarray(bgr), [cv2.IMWRITE_WEBP_QUALITY, 90])
    if not ok:
        raise ValueError(f"could not encode a {array.shape} image as WebP")
    return buf.tobytes()


def render(data: bytes, models: ModelPool, query: MaskQuery, background: bytes | None, max_pixels: int | None) -> bytes:
    """Segment ``data`` and encode what ``query`` asks for (a model's first use loads it, here in the worker)."""
    model = models.get(query.model)
    if not isinstance(query, RemoveQuery):  # /v1/mask
        seg = segment(data, model, query.remove_options(), max_pixels=max_pixels, name="upload")
        return encode(seg.mask(), "png")
    bg_image = read_image(background, max_pixels=max_pixels, name="background").rgb if background else None
    seg = segment(data, model, query.remove_options(query.foreground), max_pixels=max_pixels, name="upload")
    if query.mask_only:
        return encode(seg.mask(), query.format)
    bgcolor = query.color
    if query.format == "jpg" and bgcolor is None and bg_image is None and query.bg_blur is None:
        bgcolor = (255, 255, 255)  # JPEG has no alpha: white unless asked otherwise
    if bgcolor is not None or bg_image is not None or query.bg_blur is not None:
        return encode(seg.replaced(bgcolor=bgcolor, bg_image=bg_image, bg_blur=query.bg_blur), query.format)
    return encode(seg.cutout(), query.format)


def _check_combination(query: MaskQuery, background: bytes | None) -> None:
    if not isinstance(query, RemoveQuery):
        return
    given = [n for n, v in (("bgcolor", query.bgcolor), ("bg_blur", query.bg_blur), ("background", background)) if v]
    if len(given) > 1:
        raise HTTPException(400, f"give one background, not {' and '.join(given)}")
    color = query.color
    if query.format == "jpg" and color is not None and len(color) == 4 and color[3] < 255:
        raise HTTPException(400, "format=jpg cannot hold a see-through bgcolor: use png or webp")


# --- the app -------------------------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(
    model: Segmenter | str | os.PathLike | None = None,
    *,
    api_key: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    workers: int = 2,
    queue_size: int = 16,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    providers: Any = None,
    threads: int | None = None,
    with_ui: bool = False,
) -> FastAPI:
    """The API app. ``model``: a loaded model, a shipped name or a path (loaded now, so a bad one fails here).

    ``api_key``: required on every route but /health (default: ``$PERSONSEG_API_KEY``; empty: no key).
    ``workers`` inference threads, ``queue_size`` waiting requests beyond them (then 503).
    """
    api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
    models = ModelPool(model, providers, threads)
    pool = InferencePool(workers, queue_size)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        lifespan=lifespan,
        title="personseg",
        version=__version__,
        description="Find the people in a photo and remove or replace the background.",
    )
    app.state.models, app.state.pool = models, pool
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_upload_bytes)
    if api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=api_key)  # added last = runs first

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_query(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{err['loc'][-1]}: {err['msg']}" for err in exc.errors()]
        return _error(400, "; ".join(problems))

    async def handle(request: Request, query: MaskQuery) -> Response:
        pool.reserve()
        submitted = False
        try:
            data, background = await read_upload(request)
            probe_image(data, max_pixels)
            if background is not None:
                probe_image(background, max_pixels, "background")
            _check_combination(query, background)
            if query.model is not None and query.model not in models.names():
                raise HTTPException(400, f"unknown model {query.model!r}; available: {', '.join(models.names())}")
            start = time.perf_counter()
            submitted = True
            try:
                out = await pool.run(render, data, models, query, background, max_pixels)
            except ImageReadError as exc:
                raise HTTPException(400, str(exc)) from None
            except ValueError as exc:
                raise HTTPException(400, " ".join(str(exc).split())) from None
            except MemoryError:
                raise HTTPException(503, "out of memory for this image; try a smaller one") from None
        finally:
            if not submitted:
                pool.release()
        media = MEDIA_TYPES[query.format if isinstance(query, RemoveQuery) else "png"]
        ms = (time.perf_counter() - start) * 1000
        # Time from the job's submission to its result: queue wait + inference + encoding.
        return Response(out, media_type=media, headers={"X-Processing-Ms": f"{ms:.0f}"})

    upload_doc = {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary", "description": "the photo"},
                            "background": {
                                "type": "string",
                                "format": "binary",
                                "description": "optional new background image (/v1/remove)",
                            },
                        },
                    }
                },
                "image/*": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
    errors_doc = {
        code: {"description": text, "content": {"application/json": {"example": {"error": "..."}}}}
        for code, text in (
            (400, "bad option, empty body, corrupt image"),
            (401, "missing or wrong API key"),
            (413, "upload over the byte limit, or image over the pixel limit"),
            (415, "not an image, or an unsupported format or Content-Type"),
            (503, "busy: the queue is full; retry"),
        )
    }

    @app.post(
        "/v1/remove",
        openapi_extra=upload_doc,
        responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}, **errors_doc},
        response_class=Response,
    )
    async def remove(request: Request, query: Annotated[RemoveQuery, Query()]) -> Response:
        """The person on a transparent background (PNG), on a colour, a blurred or a new background, or the mask."""
        return await handle(request, query)

    @app.post(
        "/v1/mask",
        openapi_extra=upload_doc,
        responses={200: {"content": {"image/png": {}}}, **errors_doc},
        response_class=Response,
    )
    async def mask(request: Request, query: Annotated[MaskQuery, Query()]) -> Response:
        """The person's alpha as a grey PNG (255 = person)."""
        return await handle(request, query)

    @app.get("/v1/models")
    async def get_models() -> dict:
        """The models this server can use; ``model=NAME`` picks one per request."""
        out = []
        for name in models.names():
            entry = registry.SHIPPED_MODELS.get(name)
            out.append(
                {
                    "name": name,
                    "default": name == models.default_name,
                    "loaded": models.loaded(name),
                    "description": entry.description if entry else "custom model given to personseg serve",
                    "input_size": list(entry.input_size) if entry else None,
                }
            )
        return {"default": models.default_name, "models": out}

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/" if with_ui else "/docs")

    @app.get("/health")
    async def health() -> dict:
        """Liveness, without the API key."""
        return {"status": "ok", "version": __version__, "in_flight": pool.in_flight, "capacity": pool.capacity}

    if with_ui:
        from personseg.serve.ui import mount_ui

        mount_ui(
            app,
            models,
            max_pixels=max_pixels,
            workers=workers,
            queue_size=queue_size,
            max_upload_bytes=max_upload_bytes,
        )
    return app
