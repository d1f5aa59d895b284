"""personseg.evaluation: numpy counting with ignored pixels, pooled vs mean IoU, the training split, the macro."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from personseg.cli import main as cli_main
from personseg.data.folder import IGNORE
from personseg.data.split import split_stems
from personseg.evaluation import (
    EvalResult,
    SplitConfig,
    evaluation_folders,
    macro_average,
    read_split_config,
    score_image,
)
from synthetic import person


def test_ignored_pixels_count_nowhere():
    truth = np.zeros((40, 40), np.float32)
    truth[5:20, 5:20] = 1.0
    truth[25:35, 25:35] = IGNORE  # a cyclist: label unknown
    prob = (truth != 0).astype(np.float32)  # right on the person, "person" on the cyclist too
    s = score_image(prob, truth)
    assert s["iou"] == s["dice"] == s["pixel_accuracy"] == s["boundary_iou"] == 1.0
    assert s["mae"] == 0.0
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (225, 0, 0, 1600 - 225 - 100)
    counted = score_image(prob, np.maximum(truth, 0))  # the same pixels counted as background
    assert counted["iou"] == pytest.approx(225 / 325) and counted["mae"] > 0


def test_pooled_iou_sums_pixels_mean_iou_averages_images():
    truth_a, truth_b, truth_c = (np.zeros((4, 4), np.float32) for _ in range(3))
    truth_a[0, :2] = 1  # 2 person pixels, 1 found: IoU 1/2
    pred_a = np.zeros_like(truth_a)
    pred_a[0, 0] = 1
    truth_b[:2] = 1  # 8 person pixels, all found: IoU 1
    # truth_c is empty and so is its prediction: IoU 1 (nobody here, rightly), and no pixels to pool
    r = EvalResult(
        stems=["a", "b", "c"],
        scores=[score_image(pred_a, truth_a), score_image(truth_b, truth_b), score_image(truth_c, truth_c)],
    )
    s = r.summary()
    assert s["iou"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert s["pooled_iou"] == pytest.approx((1 + 8) / (2 + 8))


def test_counts_match_torch_metrics():
    torch = pytest.importorskip("torch")
    from personseg.evaluation.metrics import get_stats

    rng = np.random.default_rng(0)
    prob = rng.random((2, 16, 16)).astype(np.float32)
    truth = rng.choice([0.0, 0.3, 0.7, 1.0, IGNORE], size=(2, 16, 16)).astype(np.float32)
    ours = [score_image(p, t) for p, t in zip(prob, truth, strict=True)]
    theirs = get_stats(torch.from_numpy(prob), torch.from_numpy(truth))
    for k, counts in zip(("tp", "fp", "fn", "tn"), theirs, strict=True):
        assert [s[k] for s in ours] == counts.tolist()


def test_macro_average_weighs_sources_equally_and_names_missing_ones():
    report = {
        "davis_people": {"iou": 0.5, "boundary_iou": 0.2, "images": 200},
        "ccp": {"iou": 0.9, "boundary_iou": 0.6, "images": 80},
        "viton": {"iou": 0.0, "boundary_iou": 0.0, "images": 400},  # reported, not averaged
    }
    macro = macro_average(report, ["davis_people", "ccp"])
    assert macro == pytest.approx({"iou": 0.7, "boundary_iou": 0.4})
    with pytest.raises(ValueError, match="coco_train"):
        macro_average(report, ["davis_people", "coco_train"])


def _folder(root, stems, size=(24, 32)):
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i, stem in enumerate(stems):
        rgb, mask = person(*size, seed=i)
        Image.fromarray(rgb).save(root / "images" / f"{stem}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"{stem}.png")
    return root


@pytest.fixture
def split_data(tmp_path):
    davis = [f"{seq}_{i:05d}" for seq in ("walk", "lucia", "dance-jump") for i in range(3)]
    ccp = [f"{i:04d}" for i in range(30)]
    config = tmp_path / "train.yaml"
    config.write_text(
        "model: unet\n"
        "val_fraction: 0.2\n"
        "val_patterns:\n  - davis_people/lucia_*\n  - davis_people/dance-jump_*\n  - other/x_*\n"
        "select_sources: [davis_people, ccp]\n"
    )
    return _folder(tmp_path / "davis_people", davis), _folder(tmp_path / "ccp", ccp), config


def test_split_config_splits_like_training_and_sets_main_subject_apart(split_data):
    davis, ccp, config = split_data
    split = read_split_config(config)
    assert split == SplitConfig(
        0.2, ("davis_people/lucia_*", "davis_people/dance-jump_*", "other/x_*"), ("davis_people", "ccp")
    )
    folders = evaluation_folders([davis, ccp], split)
    assert list(folders) == ["davis_people", "davis_people/dance-jump_*", "ccp"]
    assert folders["davis_people"].stems == [f"lucia_{i:05d}" for i in range(3)]  # walk trains; dance-jump apart
    assert folders["davis_people/dance-jump_*"].stems == [f"dance-jump_{i:05d}" for i in range(3)]
    expected = split_stems("ccp", [f"{i:04d}" for i in range(30)], 0.2)[1]
    assert folders["ccp"].stems == expected and 0 < len(expected) < 30


def test_evaluate_cli_reports_sources_and_macro(split_data, tmp_path, capsys):
    davis, ccp, config = split_data
    out = tmp_path / "eval.json"
    args = ["evaluate", "-m", "personseg-fast", "--threads", "1", "--split-config", str(config), "--json", str(out)]
    assert cli_main([*args, "--data", str(davis), str(ccp)]) == 0
    text = capsys.readouterr().out
    assert "davis_people/dance-jump_*" in text and "macro average over davis_people, ccp" in text
    report = json.loads(out.read_text())
    r = report["results"]
    assert report["macro"]["iou"] == pytest.approx((r["davis_people"]["iou"] + r["ccp"]["iou"]) / 2)
    assert cli_main([*args, "--data", str(davis)]) == 2  # ccp is a macro source without --data
    assert "ccp" in capsys.readouterr().err


def test_evaluation_imports_without_torch():
    code = "import sys; sys.modules['torch'] = None; import personseg.evaluation, personseg.cli.evaluate"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_temporal_scores_against_hand_computed_values():
    from personseg.evaluation import temporal_scores

    g0 = np.array([[0, 0, 1, 1]], np.float32)
    g1 = np.array([[0, 1, 1, 1]], np.float32)  # the edge moves one pixel left
    p0 = np.array([[0.2, 0.0, 1.0, 1.0]], np.float32)
    p1 = np.array([[0.0, 0.0, 1.0, 0.6]], np.float32)  # lags the edge, boils at 0 and 3
    out = temporal_scores([p0, p1], [g0, g1])
    # IoU: frame 0 {2,3} vs {2,3} = 1; frame 1 {2,3} vs {1,2,3} = 2/3
    assert out["iou"] == pytest.approx((1 + 2 / 3) / 2)
    # dp = [-0.2, 0, 0, -0.4], dg = [0, 1, 0, 0]: |dp - dg| = [0.2, 1, 0, 0.4], mean 0.4 -> 40
    assert out["temporal_error"] == pytest.approx(40.0)
    # still pixels 0, 2, 3: |dp| = 0.2, 0, 0.4 -> mean 0.2 -> 20
    assert out["flicker"] == pytest.approx(20.0)
    # the truth moved at pixel 1 only: |dp - dg| there is 1 of the 4 pixels' 1.6 -> 25; the still ones give 15
    assert out["te_moved"] == pytest.approx(25.0) and out["te_still"] == pytest.approx(15.0)
    assert out["frames"] == 2
    steady = temporal_scores([g0, g1], [g0, g1])
    assert steady["temporal_error"] == 0 and steady["flicker"] == 0 and steady["iou"] == 1
    with pytest.raises(ValueError, match="as many predictions"):
        temporal_scores([p0], [g0, g1])
