"""Frames from an OpenCV capture read ahead in a thread of their own, for ``personseg live``.

Reading a frame (a camera's wait for it, or decoding a file or stream) and converting it to RGB take ~2.5 ms of
a 720p frame on one core; in a thread they overlap the processing of the frame before, which spends most of
its time in OpenCV and ONNX Runtime with the GIL released. From a camera or a stream only the newest frame is
kept (a live view shows the present, not a growing backlog); from a file every frame is, in order.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

_END = object()


class FrameGrabber:
    """Iterate over RGB frames of ``cap`` (an opened ``cv2.VideoCapture``), read ahead by a background thread.

    ``latest_only``: drop a frame not yet taken when a newer one arrives (cameras, streams). An error in the
    reading thread is raised where the frame would have been taken. :meth:`close` stops the thread; it does not
    release ``cap``.
    """

    def __init__(self, cap: Any, latest_only: bool = False) -> None:
        self._cap = cap
        self._latest_only = latest_only
        self._queue: queue.Queue = queue.Queue(maxsize=1 if latest_only else 2)
        self._stop = threading.Event()
        self.dropped = 0
        self._ended = False
        self._thread = threading.Thread(target=self._read, name="personseg-grab", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                ok, bgr = self._cap.read()
                if not ok:
                    break
                self._put(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        except Exception as exc:  # handed to the consumer, which raises it
            self._put(RuntimeError(f"reading a frame failed: {exc}"))
        self._put(_END)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            if self._latest_only and item is not _END and not isinstance(item, Exception):
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self._queue.get_nowait()  # the older frame nobody took yet
                        self.dropped += 1
                    except queue.Empty:
                        pass
                    continue
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> FrameGrabber:
        return self

    def __next__(self) -> np.ndarray:
        if self._ended:  # the stream ended, or close() was called
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._ended = True
            raise StopIteration
        if isinstance(item, Exception):
            raise item
        return item

    def close(self, timeout: float = 2.0) -> None:
        """Stop reading ahead and wait for the thread (at most ``timeout`` seconds: a camera's read may hang)."""
        self._stop.set()
        self._ended = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the frame reader did not stop within %.1f s", timeout)
