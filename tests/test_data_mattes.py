"""Boundary targets from a matting peer (data.mattes, PairedFolder(mattes=...), scripts/make_mattes.py)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from personseg.data import PairedFolder
from personseg.data.folder import IGNORE, DatasetError
from personseg.data.mattes import band_width, boundary_band, boundary_target, read_matte
from personseg.training.builders import boundary_matte_dirs
from personseg.training.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent


def _square(h: int = 120, w: int = 100, top: int = 30, left: int = 30, side: int = 50) -> np.ndarray:
    label = np.zeros((h, w), np.float32)
    label[top : top + side, left : left + side] = 1
    return label


def test_the_band_is_the_pixels_near_the_outline_on_both_sides():
    label = _square()  # rows 30-79, columns 30-79
    band = boundary_band(label, 3)
    assert band[55, 31] and band[55, 32]  # 1-2 px inside the left edge
    assert band[55, 28] and band[55, 27]  # 2-3 px outside it (column 29 is the first outside)
    assert not band[55, 36] and not band[55, 24]  # 6 px inside / outside
    assert not band[55, 55]  # the middle
    assert band_width((480, 640)) == 8  # 1% of the 800 px diagonal
    assert band_width((40, 30)) == 2  # never under 2 px


def test_a_person_at_the_photo_edge_has_no_band_there():
    label = np.zeros((60, 60), np.float32)
    label[20:, 10:50] = 1  # cut by the bottom edge
    band = boundary_band(label, 3)
    assert not band[58:, 20:40].any()  # the photo's edge is not an outline
    assert band[20, 30] and band[40, 10]


def test_the_band_takes_the_matte_and_the_rest_keeps_the_label():
    label = _square()
    matte = np.zeros_like(label)
    matte[31:81, 30:80] = 1.0  # the outline one pixel lower
    matte[30, 30:80] = 0.4  # a soft top edge
    matte[2:6, 2:6] = 1.0  # a bystander far from the outline
    matte[55, 55] = 0.2  # a hole in the interior
    out = boundary_target(label, matte)
    assert out is not None and out.dtype == np.float32
    band = boundary_band(label, band_width(label.shape))
    np.testing.assert_array_equal(out[band], matte[band])
    np.testing.assert_array_equal(out[~band], label[~band])
    assert out[30, 50] == pytest.approx(0.4) and out[80, 50] == 1.0  # the edge moves where the matte says
    assert out[2:6, 2:6].max() == 0.0  # the bystander stays background
    assert out[55, 55] == 1.0  # the interior keeps the label


def test_a_matte_that_disagrees_off_the_band_is_rejected():
    label = _square()
    half = label.copy()
    half[55:, :] = 0  # the matte misses the lower half of the person
    assert boundary_target(label, half) is None
    other = np.zeros_like(label)
    other[5:25, 5:25] = 1  # someone else entirely
    assert boundary_target(label, other) is None
    assert boundary_target(np.zeros_like(label), label) is None  # no person labelled
    # the threshold is the caller's: a lax one takes the half matte
    assert boundary_target(label, half, min_agreement=0.3) is not None


def test_a_bystander_away_from_the_person_does_not_reject_the_matte():
    label = _square(h=200, w=200, top=120, left=120, side=60)
    matte = label.copy()
    matte[10:90, 10:90] = 1.0  # MODNet keeps someone else, larger than the labelled person, 30 px away
    out = boundary_target(label, matte)
    assert out is not None and out[10:90, 10:90].max() == 0.0
    matte[100:120, 120:180] = 1.0  # but a chair touching the person is near it: rejected
    assert boundary_target(label, matte) is None


def test_unknown_pixels_stay_unknown_and_sizes_must_match():
    label = _square()
    label[:, :5] = IGNORE
    matte = _square()
    matte[:, :5] = 1.0
    out = boundary_target(label, matte)
    assert out is not None and (out[:, :5] == IGNORE).all()
    with pytest.raises(ValueError, match="matte is 90x120 but the label is 100x120"):
        boundary_target(label, matte[:, :90])


def _folder(tmp_path: Path, stems=("a", "b", "c")) -> Path:
    root = tmp_path / "people"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem in stems:
        Image.fromarray(np.full((120, 100, 3), 90, np.uint8)).save(root / "images" / f"{stem}.jpg")
        Image.fromarray((_square() * 255).astype(np.uint8)).save(root / "masks" / f"{stem}.png")
    return root


def _save_matte(path: Path, matte: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(matte * 255).astype(np.uint8)).save(path)


def test_a_folder_with_mattes_loads_soft_outlines_and_counts_them(tmp_path):
    root = _folder(tmp_path)
    mattes = tmp_path / "mattes"
    soft = _square()
    soft[30, 30:80] = 0.6  # soft top edge
    _save_matte(mattes / "a.png", soft)
    _save_matte(mattes / "b.png", np.zeros((120, 100), np.float32))  # MODNet found nobody: rejected
    folder = PairedFolder(root, mattes=mattes, cache_max_side=512)
    masks = {stem: folder[i][1] for i, stem in enumerate(folder.stems)}
    assert masks["a"][30, 50] == pytest.approx(0.6, abs=1 / 255)
    assert set(np.unique(masks["b"])) == {0.0, 1.0} and set(np.unique(masks["c"])) == {0.0, 1.0}
    assert folder.matte_counts == {"taken": 1, "rejected": 1, "missing": 1}
    plain = PairedFolder(root)
    assert set(np.unique(plain[0][1])) == {0.0, 1.0}  # without mattes nothing changes


def test_a_faint_matte_is_read_as_alpha_not_as_a_binary_mask(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8)).save(path)
    assert read_matte(path).max() == pytest.approx(1 / 255)


def test_bad_matte_folders_are_one_line_errors(tmp_path):
    root = _folder(tmp_path, stems=("a",))
    with pytest.raises(DatasetError, match="no such matte folder"):
        PairedFolder(root, mattes=tmp_path / "nowhere")
    _save_matte(tmp_path / "mattes" / "a.png", np.zeros((60, 50), np.float32))
    with pytest.raises(DatasetError, match=r"a\.png: matte is 50x60 but the label is 100x120"):
        PairedFolder(root, mattes=tmp_path / "mattes", cache_max_side=512)


def test_the_config_names_each_root_and_its_mattes(tmp_path):
    root = _folder(tmp_path)
    cfg = TrainConfig(data=[f"{root}:0.5"], boundary_mattes=[f"{root}={tmp_path}/mattes"])
    assert boundary_matte_dirs(cfg) == {root.resolve(): tmp_path / "mattes"}
    assert TrainConfig.from_dict(cfg.to_dict()).boundary_mattes == cfg.boundary_mattes
    with pytest.raises(ValueError, match="expected ROOT=MATTES"):
        TrainConfig(boundary_mattes=[str(root)])
    with pytest.raises(DatasetError, match="is not one of the --data roots"):
        boundary_matte_dirs(TrainConfig(data=[str(root)], boundary_mattes=[f"{tmp_path}/other=x"]))


def _make_mattes_script():
    spec = importlib.util.spec_from_file_location("make_mattes", REPO / "scripts" / "make_mattes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_mattes"] = module
    spec.loader.exec_module(module)
    return module


def _fake_modnet(path: Path) -> None:
    """An ONNX file with MODNet's interface: 'input' N x 3 x H x W in [-1, 1] -> N x 1 x H x W alpha (the
    sigmoid of 8 x the red channel: bright pixels are person)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Slice", ["input", "start", "end", "axis"], ["red"]),
        helper.make_node("Mul", ["red", "gain"], ["scaled"]),
        helper.make_node("Sigmoid", ["scaled"], ["alpha"]),
    ]
    consts = [
        helper.make_tensor("start", TensorProto.INT64, [1], [0]),
        helper.make_tensor("end", TensorProto.INT64, [1], [1]),
        helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [8.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "fake_modnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("alpha", TensorProto.FLOAT, None)],
        initializer=consts,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_make_mattes_writes_one_matte_per_photo_at_its_size_and_resumes(tmp_path, capsys):
    root = tmp_path / "people"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rgb = np.zeros((90, 70, 3), np.uint8)
    rgb[20:70, 20:50, 0] = 255  # a bright red "person"
    Image.fromarray(rgb).save(root / "images" / "p.png")
    Image.fromarray(np.zeros((90, 70), np.uint8)).save(root / "masks" / "p.png")
    model = tmp_path / "modnet.onnx"
    _fake_modnet(model)
    script = _make_mattes_script()
    out = tmp_path / "mattes"
    assert script.main(["--data", str(root), "--output", str(out), "--modnet", str(model)]) == 0
    matte = read_matte(out / "people" / "p.png")
    assert matte.shape == (90, 70)
    assert matte[45, 35] > 0.99 and matte[5, 5] < 0.01
    stamp = (out / "people" / "p.png").stat().st_mtime_ns
    assert script.main(["--data", str(root), "--output", str(out), "--modnet", str(model)]) == 0
    assert (out / "people" / "p.png").stat().st_mtime_ns == stamp  # kept, not redone
    assert not list((out / "people").glob(".*"))  # no temporary files left behind
    assert script.main(["--data", str(root), "--output", str(out), "--modnet", str(tmp_path / "no.onnx")]) == 2
    assert "MODNet not found" in capsys.readouterr().err
