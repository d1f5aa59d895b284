"""``create_app``: the HTTP API as a FastAPI app (``personseg serve`` runs it with uvicorn).

Routes: ``POST /v1/remove`` (cut-out, replaced background or mask), ``POST /v1/mask``, ``GET /v1/models``,
``GET /health``, ``GET /ready`` and the OpenAPI docs at ``/docs`` and ``/redoc`` (served offline); the Gradio UI
at ``/ui`` with ``with_ui=True``.

What keeps one process healthy under hostile input: uploads are capped by Content-Length *and* by counting
the streamed bytes (413), must arrive within a deadline (408), and the bytes of all bodies held at once are
bounded (503); the image header is probed before anything is decoded, so a decompression bomb, a non-image or
an image too large to decode within the memory budget costs microseconds (413 / 415), and a large one is
decoded reduced; only common raster formats are accepted (no EPS, which would run Ghostscript); a request takes
an inference slot only once its body is complete, inference runs in a bounded thread pool behind a bounded
queue, off the event loop, and a full queue answers 503 at once; each request has a total deadline; no URL given
by a client is ever fetched. Every error is JSON ``{"error": "..."}``; client faults log one line at most.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from personseg import __version__
from personseg.inference import registry
from personseg.inference.api import Segmenter
from personseg.inference.compose import parse_color
from personseg.inference.io import DEFAULT_MAX_PIXELS, ImageReadError, ImageTooLargeError
from personseg.serve.codec import MEDIA_TYPES, check_combination, probe_image, read_upload, render
from personseg.serve.docs import mount_docs
from personseg.serve.middleware import ApiKeyMiddleware, BodyLimitMiddleware, UploadBudget
from personseg.serve.options import MaskQuery, RemoveQuery
from personseg.serve.pool import InferencePool, ModelPool

log = logging.getLogger(__name__)

# parse_color (personseg.inference.compose) stays importable from here, where callers have always found it.
__all__ = ["API_KEY_ENV", "DEFAULT_MAX_MEMORY", "DEFAULT_MAX_UPLOAD_BYTES", "create_app", "parse_color"]

API_KEY_ENV = "PERSONSEG_API_KEY"
DEFAULT_MAX_UPLOAD_BYTES = 25 * 2**20
#: Working memory per image in the server (each of ``workers`` may hold this much; see docs/serve.md).
DEFAULT_MAX_MEMORY = 512 * 2**20
#: Seconds a client has to send its whole request body (then 408 and the connection is closed).
DEFAULT_BODY_TIMEOUT = 30.0
#: Seconds from a request's start to its answer, queue wait and inference included (then 503).
DEFAULT_REQUEST_TIMEOUT = 120.0


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def create_app(
    model: Segmenter | str | os.PathLike | None = None,
    *,
    api_key: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    workers: int = 2,
    queue_size: int = 16,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    providers: Any = None,
    threads: int | None = None,
    device: str | None = None,
    with_ui: bool = False,
) -> FastAPI:
    """The API app. ``model``: a loaded model, a shipped name or a path (loaded now, so a bad one fails here).

    ``api_key``: required on every route but /health and /ready (default: ``$PERSONSEG_API_KEY``; empty: no
    key, with a warning). ``workers`` inference threads, ``queue_size`` waiting requests beyond them (then 503).
    ``max_memory``: working memory per image in bytes (a larger image is processed reduced, one that cannot
    be decoded within it is a 413). ``body_timeout``: seconds to send the body (then 408);
    ``request_timeout``: seconds from the request's start to its answer (then 503). ``None`` lifts a limit.
    Bodies held at once are bounded by (workers + queue_size) x ``max_upload_bytes`` (then 503).
    ``providers``, ``threads`` and ``device`` (a ``.pt`` model's torch device) are :func:`load_model`'s.
    """
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV)
    if api_key is not None and not api_key.strip():
        log.warning("the API key is empty: the API runs without one (anyone who can reach it can use it)")
    api_key = api_key.strip() if api_key else None
    models = ModelPool(model, providers, threads, device=device)
    pool = InferencePool(workers, queue_size)
    uploads = UploadBudget(pool.capacity * max_upload_bytes)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        lifespan=lifespan,
        title="personseg",
        version=__version__,
        description="Find the people in a photo and remove or replace the background.",
        docs_url=None,
        redoc_url=None,
    )
    mount_docs(app)  # Swagger UI and ReDoc from installed files: they work offline
    app.state.models, app.state.pool, app.state.uploads = models, pool, uploads
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_upload_bytes, budget=uploads, body_timeout=body_timeout)
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
        loop = asyncio.get_running_loop()
        began = loop.time()
        # The upload first: a slot is taken only by a request whose body is complete and looks processable.
        data, background = await read_upload(request)
        probe_image(data, max_pixels, max_memory)
        if background is not None:
            probe_image(background, max_pixels, max_memory, "background")
        check_combination(query, background)
        if query.model is not None and query.model not in models.names():
            raise HTTPException(400, f"unknown model {query.model!r}; available: {', '.join(models.names())}")
        pool.reserve()
        start = time.perf_counter()
        left = None if request_timeout is None else max(0.1, request_timeout - (loop.time() - began))
        try:
            out = await pool.run(render, data, models, query, background, max_pixels, max_memory, timeout=left)
        except TimeoutError:
            message = f"not done within the server's {request_timeout:g} s per request (--request-timeout); retry"
            raise HTTPException(503, message, headers={"Retry-After": "5"}) from None
        except ImageTooLargeError as exc:
            raise HTTPException(413, str(exc)) from None
        except ImageReadError as exc:
            raise HTTPException(400, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(400, _one_line(exc)) from None
        except MemoryError:
            raise HTTPException(503, "out of memory for this image; try a smaller one") from None
        except Exception as exc:  # a broken model, a bug: one line in the log and a JSON 500, not a traceback
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, _one_line(exc))
            log.debug("traceback", exc_info=True)
            raise HTTPException(500, f"internal error: {type(exc).__name__}: {_one_line(exc)}") from None
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
            (408, "the body was not sent within --body-timeout"),
            (413, "upload over the byte limit, image over the pixel limit, or too large to decode in --max-memory"),
            (415, "not an image, or an unsupported format or Content-Type"),
            (500, "the model failed (one line saying how)"),
            (503, "busy: the queue or the upload memory is full, or --request-timeout passed; retry"),
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

    def load() -> dict:
        return {
            "status": "busy" if pool.full else "ok",
            "version": __version__,
            "in_flight": pool.in_flight,
            "capacity": pool.capacity,
            "upload_bytes": uploads.held,
        }

    @app.get("/health")
    async def health() -> dict:
        """Liveness, without the API key: always 200; ``status`` is ``busy`` while every slot is taken."""
        return load()

    @app.get("/ready", responses={503: {"description": "every worker and queue slot is taken"}})
    async def ready() -> JSONResponse:
        """Readiness for load balancers, without the API key: 503 while every slot is taken, else 200."""
        body = load()
        return JSONResponse(body, status_code=503 if pool.full else 200)

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
