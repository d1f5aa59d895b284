"""ONNX export: parity with PyTorch, dynamic batch, embedded metadata, atomic writes, the CLI command."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402

from personseg.cli import main  # noqa: E402
from personseg.export import export_onnx  # noqa: E402
from personseg.models import load_checkpoint  # noqa: E402
from synthetic import iou, person  # noqa: E402

INPUT_SIZE = [64, 64]  # the tiny model's (conftest.py)


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_onnx_matches_pytorch_on_random_inputs_at_any_batch(tiny_model, batch) -> None:
    model, _ = load_checkpoint(tiny_model.checkpoint)
    x = np.random.default_rng(batch).normal(size=(batch, 3, *INPUT_SIZE)).astype(np.float32)
    got = _session(tiny_model.onnx).run(["prob"], {"image": x})[0]
    with torch.inference_mode():
        want = torch.sigmoid(model(torch.from_numpy(x))).numpy()
    assert got.shape == (batch, 1, *INPUT_SIZE)
    assert np.abs(got - want).max() < 1e-4


def test_graph_has_named_io_and_a_dynamic_batch_dim(tiny_model) -> None:
    proto = onnx.load(str(tiny_model.onnx))
    onnx.checker.check_model(proto)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("image", "prob")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [3, *INPUT_SIZE]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_metadata_round_trip(tiny_model) -> None:
    props = _session(tiny_model.onnx).get_modelmeta().custom_metadata_map
    meta = json.loads(props["personseg"])
    for key, value in tiny_model.meta.items():
        assert meta[key] == value, key
    arch = json.loads(props["personseg_model"])
    assert arch["name"] == "unet" and arch["config"]["base_channels"] == 4


def test_input_size_override_is_exported_and_recorded(tiny_model, tmp_path) -> None:
    out = export_onnx(tiny_model.checkpoint, tmp_path / "sub" / "m.onnx", input_size=(48, 80))
    session = _session(out)
    assert session.get_inputs()[0].shape[1:] == [3, 48, 80]
    assert json.loads(session.get_modelmeta().custom_metadata_map["personseg"])["input_size"] == [48, 80]
    assert [p.name for p in out.parent.iterdir()] == ["m.onnx"]  # no temp file left


def test_failed_export_leaves_nothing(tiny_model, tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        export_onnx(bad, tmp_path / "out" / "m.onnx")
    with pytest.raises(ValueError, match="input_size"):
        export_onnx(tiny_model.checkpoint, tmp_path / "out" / "m.onnx", input_size=(0, 64))
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_cli_export(tiny_model, tmp_path, capsys) -> None:
    out = tmp_path / "cli.onnx"
    assert (
        main(["export", "--checkpoint", str(tiny_model.checkpoint), "--output", str(out), "--input-size", "32", "48"])
        == 0
    )
    assert _session(out).get_inputs()[0].shape[1:] == [3, 32, 48]
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pt" in err[0]


# --------------------------------------------------------------------------- int8


def _photos(root, n: int = 12):
    from PIL import Image

    (root / "images").mkdir(parents=True)
    for i in range(n):
        img, _ = person(64, 64, seed=i, center=(20 + 2 * i, 30), radius=12 + i % 4)
        Image.fromarray(img).save(root / "images" / f"p{i}.png")
    return root


def test_int8_export_is_quantized_keeps_metadata_and_agrees(tiny_model, tmp_path, capsys) -> None:
    from personseg.inference.api import load_model

    photos = _photos(tmp_path / "calib")
    out = tmp_path / "int8.onnx"
    argv = ["export", "--checkpoint", str(tiny_model.checkpoint), "--output", str(out), "--int8"]
    assert main([*argv, "--calibration", str(photos), "--calibration-images", "8"]) == 0
    graph = onnx.load(str(out)).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    # Weights use 7 bits (reduce_range), so no CPU's int8 kernel saturates: every CPU gives the same mask.
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights and all(-64 <= w.min() and w.max() <= 64 for w in weights)
    assert max(int(np.abs(w).max()) for w in weights) >= 60  # the range is used, not just clipped small
    quantized, float_model = load_model(out, providers="cpu"), load_model(tiny_model.onnx, providers="cpu")
    assert quantized.meta["quantized"] == "int8" and quantized.meta["calibration_images"] == 8
    assert quantized.meta["input_size"] == float_model.meta["input_size"]
    img, mask = person(64, 64, seed=123, center=(30, 34), radius=14)
    got, want = quantized.predict(img), float_model.predict(img)
    assert np.abs(got - want).mean() < 0.03
    assert iou(got >= 0.5, mask) > 0.85
    assert list(tmp_path.glob(".export.*")) == []  # the float intermediate is gone
    # --int8 without photos to calibrate on is refused before any work.
    assert main([*argv]) == 2
    assert "--calibration" in capsys.readouterr().err


def test_calibration_images_spread_over_folders_and_skip_validation(tmp_path) -> None:
    from personseg.data.split import split_stems
    from personseg.export.quantize import calibration_images

    a, b = _photos(tmp_path / "a", 20), _photos(tmp_path / "b", 6)
    files = calibration_images([a, b], limit=10)
    assert len(files) == 10 and sum(f.parent.parent == b for f in files) == 5
    held_out = split_stems("a", [f"p{i}" for i in range(20)], 0.5)[1]
    files = calibration_images([a], limit=20, val_fraction=0.5)
    assert files and not {f.stem for f in files} & set(held_out)
    # whole sequences named by validation patterns are left out instead of the hash split, as in training
    files = calibration_images([a, b], limit=40, val_fraction=0.5, val_patterns=["a/p1*"])
    stems = {f.stem for f in files if f.parent.parent == a}
    assert stems == {f"p{i}" for i in range(20)} - {"p1", *(f"p1{i}" for i in range(10))}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        calibration_images([tmp_path / "empty"])


def test_quantizer_chatter_on_the_root_logger_is_dropped(caplog):
    import logging

    from personseg.export.quantize import _onnxruntime_quiet

    def record(path: str) -> logging.LogRecord:
        return logging.LogRecord("root", logging.INFO, path, 1, "Increased scale[0] for weight", None, None)

    with caplog.at_level(logging.INFO):
        with _onnxruntime_quiet():
            logging.getLogger().handle(record("/x/onnxruntime/quantization/qdq_quantizer.py"))
            logging.getLogger().handle(record("/x/personseg/export/quantize.py"))
        logging.getLogger().handle(record("/x/onnxruntime/quantization/qdq_quantizer.py"))
    paths = [r.pathname for r in caplog.records]
    assert paths == ["/x/personseg/export/quantize.py", "/x/onnxruntime/quantization/qdq_quantizer.py"]
