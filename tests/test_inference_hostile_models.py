"""Hostile or malformed model files: every one is a one-line error naming the file, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from personseg.inference import api  # noqa: E402

GOOD_META = {"input_size": [32, 32], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "resize": "letterbox"}
GOOD_META["threshold"] = 0.5
REPO = Path(__file__).resolve().parents[1]


def tiny_onnx(path: Path, meta: object = GOOD_META, raw_meta: str | None = None, huge: bool = False) -> Path:
    """A model whose "probability" is the mean of the input channels through a sigmoid (no torch needed).

    ``huge``: the output is instead a constant tensor of 10^12 floats, which ONNX Runtime cannot allocate.
    """
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])
    prob = helper.make_tensor_value_info("prob", TensorProto.FLOAT, None)
    if huge:
        shape = helper.make_tensor("shape", TensorProto.INT64, [4], [1, 1, 1_000_000, 1_000_000])
        nodes = [
            helper.make_node("Constant", [], ["shape"], value=shape),
            helper.make_node("ConstantOfShape", ["shape"], ["big"]),
            helper.make_node("Add", ["big", "image"], ["prob"]),
        ]
    else:
        nodes = [
            helper.make_node("ReduceMean", ["image"], ["m"], axes=[1], keepdims=1),
            helper.make_node("Sigmoid", ["m"], ["prob"]),
        ]
    graph = helper.make_graph(nodes, "tiny", [image], [prob])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    text = raw_meta if raw_meta is not None else json.dumps(meta)
    model.metadata_props.add(key=api.META_KEY, value=text)
    onnx.save(model, path)
    return path


def test_a_well_formed_tiny_model_loads(tmp_path) -> None:
    model = api.load_model(tiny_onnx(tmp_path / "ok.onnx"), providers="cpu", threads=1)
    alpha = model.predict(np.zeros((10, 12, 3), np.uint8))
    assert alpha.shape == (10, 12)


@pytest.mark.parametrize(
    ("meta", "raw", "words"),
    [
        ([1, 2, 3], None, "must be a JSON object"),
        ("letterbox", None, "must be a JSON object"),
        (None, "{not json", "not valid JSON"),
        ({**GOOD_META, "input_size": [100000, 100000]}, None, "outside 1..4096"),
        ({**GOOD_META, "input_size": [32]}, None, "input_size"),
        ({**GOOD_META, "input_size": ["a", "b"]}, None, "input_size"),
        ({**GOOD_META, "input_size": [True, 32]}, None, "input_size"),
        ({**GOOD_META, "std": [0.2, 0, 0.2]}, None, "std must be > 0"),
        ({**GOOD_META, "std": "x"}, None, "std must be 3 finite numbers"),
        ({**GOOD_META, "mean": [0.5, None, 0.5]}, None, "mean must be 3 finite numbers"),
        ({**GOOD_META, "threshold": 7}, None, "threshold"),
        ({k: v for k, v in GOOD_META.items() if k != "mean"}, None, "lacks mean"),
    ],
)
def test_bad_metadata_is_one_line_naming_the_file(tmp_path, meta, raw, words) -> None:
    path = tiny_onnx(tmp_path / "bad.onnx", meta, raw_meta=raw)
    with pytest.raises(ValueError, match=words) as info:
        api.load_model(path, providers="cpu", threads=1)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_a_graph_that_cannot_allocate_is_one_line_naming_the_model(tmp_path) -> None:
    path = tiny_onnx(tmp_path / "greedy.onnx", huge=True)
    model = api.load_model(path, providers="cpu", threads=1)
    with pytest.raises(RuntimeError, match="ONNX Runtime failed running the model") as info:
        model.predict(np.zeros((8, 8, 3), np.uint8))
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message and len(message) < 500


def test_cli_reports_a_failing_graph_per_image_in_one_line(tmp_path, capsys) -> None:
    from PIL import Image

    from personseg.cli import main

    path = tiny_onnx(tmp_path / "greedy.onnx", huge=True)
    Image.new("RGB", (20, 10)).save(tmp_path / "a.png")
    assert main(["remove", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "-m", str(path), "-q"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "greedy.onnx: ONNX Runtime failed" in err
    assert not (tmp_path / "out" / "a_mask.png").exists()


def test_serve_with_a_checkpoint_but_no_torch_is_one_line(tmp_path) -> None:
    pytest.importorskip("fastapi")
    checkpoint = tmp_path / "x.pt"
    checkpoint.write_bytes(b"not really a checkpoint")
    code = (
        "import sys\nsys.modules['torch'] = None\nfrom personseg.cli import main\n"
        f"sys.exit(main(['serve', '--no-ui', '-m', {str(checkpoint)!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "x.pt" in lines[0] and "pip install 'personseg[train]'" in lines[0]
