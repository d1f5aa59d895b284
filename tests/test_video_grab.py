"""The read-ahead frame grabber of ``personseg live``: every frame of a file in order, the newest of a camera."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from personseg.video.grab import FrameGrabber


class FakeCapture:
    """``n`` BGR frames whose first pixel holds their number (then end of stream); ``fail_at`` raises there."""

    def __init__(self, n: int, delay: float = 0.0, fail_at: int | None = None) -> None:
        self.n, self.delay, self.fail_at, self.reads = n, delay, fail_at, 0

    def read(self):
        if self.delay:
            time.sleep(self.delay)
        i = self.reads
        if i >= self.n:
            return False, None
        if i == self.fail_at:
            raise OSError("device unplugged")
        self.reads += 1
        bgr = np.zeros((4, 6, 3), np.uint8)
        bgr[0, 0] = (i, 0, 255 - i)  # B, G, R: the RGB frame reads (255 - i, 0, i)
        return True, bgr


def numbers(frames) -> list[int]:
    return [int(f[0, 0, 2]) for f in frames]


def test_a_file_gives_every_frame_in_order_as_rgb():
    grabber = FrameGrabber(FakeCapture(30))
    frames = list(grabber)
    grabber.close()
    assert numbers(frames) == list(range(30))
    assert all(f.shape == (4, 6, 3) and f[0, 0, 0] == 255 - i for i, f in enumerate(frames))  # BGR -> RGB
    assert next(grabber, None) is None and grabber.dropped == 0  # it stays ended


def test_a_camera_keeps_only_the_newest_frame_for_a_slow_consumer():
    grabber = FrameGrabber(FakeCapture(40, delay=0.002), latest_only=True)
    taken = []
    for frame in grabber:
        taken.append(frame)
        time.sleep(0.02)  # processing takes ten camera frames
    grabber.close()
    got = numbers(taken)
    assert got == sorted(set(got)) and got[-1] == 39  # always forward, and the last frame is shown
    assert len(got) < 20 and grabber.dropped == 40 - len(got)


def test_a_read_error_is_raised_where_the_frame_is_taken():
    grabber = FrameGrabber(FakeCapture(10, fail_at=3))
    got = [next(grabber) for _ in range(3)]
    with pytest.raises(RuntimeError, match="reading a frame failed: device unplugged"):
        next(grabber)
    grabber.close()
    assert numbers(got) == [0, 1, 2]


def test_close_stops_the_thread_of_an_endless_camera():
    grabber = FrameGrabber(FakeCapture(10**9, delay=0.001), latest_only=True)
    next(grabber)
    grabber.close()
    assert not any(t.name == "personseg-grab" and t.is_alive() for t in threading.enumerate())
    grabber = FrameGrabber(FakeCapture(10**9))  # a file's reader blocked on a full queue stops too
    time.sleep(0.05)
    grabber.close()
    assert not any(t.name == "personseg-grab" and t.is_alive() for t in threading.enumerate())
