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


class _Recorder:
    """A loaded model as network_calls sees it: its metadata, zoom settings and the shapes it was called on."""

    def __init__(self, zoom):
        self.meta = {"input_size": [352, 352], "resize": "fit"}
        self.zoom = zoom
        self.shapes = []

    def _forward(self, batch):
        self.shapes.append(batch.shape)

    def network_shape(self, h, w):
        return 192, 352


def _calls(monkeypatch, zoom):
    import network_speed

    model = _Recorder(zoom)
    monkeypatch.setattr(network_speed, "load_model", lambda name, **kw: model)
    rows = network_speed.network_calls("m.onnx", threads=1)
    for _, _, call in rows:
        call()
    return rows, model.shapes


def test_the_second_look_is_timed_at_the_crop_size_when_the_model_sets_one(monkeypatch):
    from personseg.inference.zoom import ZoomSettings

    rows, shapes = _calls(monkeypatch, ZoomSettings(crop_size=288))
    assert [(name, size) for name, size, _ in rows] == [
        ("m.onnx", "352x352"),
        ("m.onnx, with the second look (2 passes)", "352x352 + 288x288"),
        ("m.onnx, a 16:9 photo", "352x192"),
    ]
    assert shapes == [(1, 3, 352, 352), (1, 3, 352, 352), (1, 3, 288, 288), (1, 3, 192, 352)]


def test_without_a_crop_size_the_second_look_is_the_input_size_twice(monkeypatch):
    from personseg.inference.zoom import ZoomSettings

    rows, shapes = _calls(monkeypatch, ZoomSettings())
    assert rows[1][1] == "352x352 twice"
    assert shapes[1:3] == [(1, 3, 352, 352), (1, 3, 352, 352)]
