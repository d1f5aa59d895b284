"""The models a server offers (loaded once each, on first use) and the bounded pool that runs inference.

Inference runs in worker threads, off the event loop, behind a bounded queue: a full queue answers 503 at once
instead of piling up memory.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from personseg.inference import registry
from personseg.inference.api import Segmenter, load_model


class ModelError(ValueError):
    """A model name the server does not offer, or a model that failed to load."""


class ModelPool:
    """The default model plus shipped models loaded on first request, each once per process."""

    def __init__(
        self,
        model: Segmenter | str | os.PathLike | None,
        providers: Any,
        threads: int | None,
        device: str | None = None,
    ) -> None:
        self._providers, self._threads = providers, threads
        default = (
            model
            if isinstance(model, Segmenter)
            else load_model(model, providers=providers, threads=threads, device=device)
        )
        self.default_name = Path(default.source).stem if (model is None or isinstance(model, Segmenter)) else None
        if self.default_name is None:
            text = os.fspath(model)
            self.default_name = text if text in registry.SHIPPED_MODELS else Path(text).stem
        self._models: dict[str, Segmenter] = {self.default_name: default}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(dict.fromkeys([self.default_name, *registry.list_shipped_models()]))

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


def _load_trim() -> Callable[[], Any] | None:
    """glibc's ``malloc_trim(0)``, or None elsewhere (musl, macOS, Windows)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


#: Hands freed heap memory back to the OS after each job. Without it glibc keeps the arenas a 90 MP image grew
#: (the soak measured the server's RSS at +114 MB after two such requests, flat at +320 MB after six); with it
#: RSS returns near its idle level. A few hundred microseconds per request.
release_memory = _load_trim() or (lambda: None)


def _then_release_memory(fn: Callable, *args: Any) -> Any:
    try:
        return fn(*args)
    finally:
        release_memory()


class InferencePool:
    """``workers`` threads and room for ``queue_size`` more waiting requests; beyond that, 503 at once.

    A request reserves its slot only once its upload is complete (a stalled upload never holds one). The slot
    counter is touched only on the event loop. A slot is freed when its job *finishes* (not when the client goes
    away or the request times out), so the count always matches the work the threads really have.
    """

    def __init__(self, workers: int, queue_size: int) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError(f"workers must be >= 1 and queue_size >= 0, got {workers} and {queue_size}")
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="personseg-infer")
        self.workers = workers
        self.capacity = workers + queue_size
        self.in_flight = 0

    @property
    def full(self) -> bool:
        return self.in_flight >= self.capacity

    def reserve(self) -> None:
        if self.full:
            raise HTTPException(
                503, f"server busy: {self.in_flight} requests in progress; retry shortly", headers={"Retry-After": "1"}
            )
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    async def run(self, fn: Callable, *args: Any, timeout: float | None = None) -> Any:
        """Run ``fn`` in a worker thread for a reserved slot, which it frees when done.

        After ``timeout`` seconds :class:`TimeoutError` is raised; a job still waiting in the queue is dropped,
        a running one finishes in the background (threads cannot be interrupted) and then frees its slot.
        """
        loop = asyncio.get_running_loop()
        future = self.executor.submit(_then_release_memory, fn, *args)

        def done(_: Any) -> None:
            try:
                loop.call_soon_threadsafe(self.release)
            except RuntimeError:  # the loop is closed: the server is shutting down
                pass

        future.add_done_callback(done)
        result = asyncio.wrap_future(future)
        # Fetch the outcome even when no one awaits it any more (timed out), so asyncio does not log it at exit.
        result.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(result), timeout)
        except asyncio.TimeoutError:
            future.cancel()
            raise TimeoutError from None
