"""benchmarks/network_speed.py: interleaved rounds call each network in turn; the table's ratios to MediaPipe."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from network_speed import interleaved, table, timed  # noqa: E402


def test_interleaved_rounds_call_each_in_turn():
    order = []
    calls = [lambda: order.append("a"), lambda: order.append("b")]
    times = interleaved(calls, rounds=3, per_round=2, warmup=1)
    assert order[:2] == ["a", "b"]  # one warm-up call each, then the rounds
    assert order[2:] == ["a", "a", "b", "b"] * 3
    assert [len(t) for t in times] == [6, 6]
    assert all(t >= 0 for own in times for t in own)


def test_back_to_back_runs_time_every_call():
    count = []
    times = timed(lambda: count.append(1), repeats=5, warmup=2)
    assert len(count) == 7 and len(times) == 5


def test_table_gives_medians_and_ratio_to_the_reference():
    text = table([("fast", "224x224"), ("mediapipe-selfie", "256x256")], [[3.0, 4.0, 5.0], [2.0, 2.0, 2.0]], 1)
    lines = text.splitlines()
    assert lines[0].endswith("of MediaPipe's |")
    assert lines[2].startswith("| fast | 224x224 | 4.00 |") and lines[2].endswith(" 2.00x |")
    assert lines[3].endswith(" 1.00x |")
    plain = table([("fast", "224x224")], [[1.0, 3.0]], None)
    assert "MediaPipe" not in plain and "| fast | 224x224 | 2.00 |" in plain
