"""Real-scene data: ignore/ masks, splits by whole sequence, crops around small people, selection by macro IoU.

Fixtures are generated into tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from personseg.data.folder import IGNORE, PairedFolder
from personseg.data.split import patterns_for, split_by_patterns
from personseg.data.zoom import PersonCrops, crop_around, person_boxes
from personseg.evaluation.metrics import get_stats
from personseg.losses import drop_ignored, get_loss
from personseg.training import builders
from personseg.training.config import TrainConfig
from personseg.training.trainer import _selection_score


def write(root: Path, stem: str, mask: np.ndarray, ignore: np.ndarray | None = None) -> None:
    for sub in ("images", "masks", "ignore"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    h, w = mask.shape
    rgb = np.full((h, w, 3), 30, np.uint8)
    rgb[mask > 0] = 220
    Image.fromarray(rgb).save(root / "images" / f"{stem}.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"{stem}.png")
    if ignore is not None:
        Image.fromarray(ignore.astype(np.uint8) * 255).save(root / "ignore" / f"{stem}.png")


# --------------------------------------------------------------------------- ignore/ masks


def test_ignore_masks_load_as_ignore_value(tmp_path):
    mask = np.zeros((20, 30), bool)
    mask[5:15, 5:10] = True
    ignore = np.zeros_like(mask)
    ignore[5:15, 20:25] = True
    write(tmp_path, "a", mask, ignore)
    write(tmp_path, "b", mask)  # no ignore file: every pixel is labelled
    folder = PairedFolder(tmp_path)
    _, m = folder[0]
    assert (m[ignore] == IGNORE).all() and (m[mask] == 1).all() and (m[~mask & ~ignore] == 0).all()
    assert (folder[1][1] >= 0).all()
    cached = PairedFolder(tmp_path, cache_max_side=15)  # downscaled with nearest: no blended -0.5 values
    assert set(np.unique(cached[0][1])) <= {IGNORE, 0.0, 1.0}


def test_ignore_mask_of_the_wrong_size_is_reported(tmp_path):
    mask = np.zeros((20, 30), bool)
    write(tmp_path, "a", mask, np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="ignore mask is 10x10 but the image is 30x20"):
        PairedFolder(tmp_path)


def test_metrics_leave_ignored_pixels_out():
    target = torch.tensor([[[1.0, 0.0, IGNORE, IGNORE]]])
    pred = torch.tensor([[[1.0, 0.0, 1.0, 0.0]]])  # right on the labelled pixels, "wrong" on the ignored ones
    tp, fp, fn, tn = get_stats(pred, target)
    assert (tp.item(), fp.item(), fn.item(), tn.item()) == (1, 0, 0, 1)


@pytest.mark.parametrize("name", ["bce", "dice", "bce_dice", "focal", "lovasz", "lovasz_boundary", "tversky"])
def test_losses_get_no_gradient_from_ignored_pixels(name):
    loss_fn = get_loss(name)
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    target[:, :, :, :3] = IGNORE
    loss = loss_fn(*drop_ignored(logits, target))
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[:, :, :, :3].abs().max() == 0
    assert logits.grad[:, :, :, 3:].abs().max() > 0
    # the same pixels labelled person instead of ignored give another loss: ignoring is not a no-op
    labelled = target.clone()
    labelled[:, :, :, :3] = 1.0
    assert loss_fn(logits.detach(), labelled).item() != pytest.approx(loss.item())


def test_drop_ignored_is_a_no_op_without_ignored_pixels():
    logits, target = torch.randn(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    out_logits, out_target = drop_ignored(logits, target)
    assert out_logits is logits and out_target is target


# --------------------------------------------------------------------------- splits by pattern


def test_split_by_patterns_keeps_whole_sequences_together():
    stems = [f"{seq}_{i:05d}" for seq in ("hike", "lucia", "tennis") for i in range(5)]
    globs = patterns_for("davis_people", ["davis_people/lucia_*", "camvid/x_*"])
    assert globs == ["lucia_*"]
    train, val = split_by_patterns(stems, globs)
    assert val == [f"lucia_{i:05d}" for i in range(5)]
    assert {s.split("_")[0] for s in train} == {"hike", "tennis"}


def test_camvid_given_split_pattern_picks_odd_frames():
    stems = ["camvid_0016E5_07959", "camvid_0016E5_07961", "camvid_0016E5_07980", "camvid_0001TP_006691"]
    _, val = split_by_patterns(stems, patterns_for("camvid", ["camvid/camvid_0016E5_*[13579]"]))
    assert val == ["camvid_0016E5_07959", "camvid_0016E5_07961"]


def test_bad_val_pattern_is_named():
    with pytest.raises(ValueError, match="expected SOURCE/STEM_GLOB"):
        TrainConfig(val_patterns=["lucia_*"])


def test_build_datasets_splits_named_sources_by_pattern(tmp_path):
    mask = np.zeros((24, 24), bool)
    mask[4:20, 8:16] = True
    videos, photos = tmp_path / "videos", tmp_path / "photos"
    for seq in ("walk", "jump"):
        for i in range(4):
            write(videos, f"{seq}_{i:03d}", mask)
    for i in range(10):
        write(photos, f"p{i}", mask)
    cfg = TrainConfig(
        data=[str(videos), str(photos)],
        val_fraction=0.3,
        val_patterns=["videos/jump_*"],
        cache_max_side=0,
        input_size=32,
        batch_size=2,
    )
    train, vals = builders.build_datasets(cfg)
    assert vals["videos"].folder.stems == [f"jump_{i:03d}" for i in range(4)]
    assert all(s.startswith("walk_") for s in train.sources[0].stems)
    photo_val = set(vals["photos"].folder.stems)  # a source named by no pattern keeps the hash split
    assert photo_val and photo_val.isdisjoint(train.sources[1].stems)


# --------------------------------------------------------------------------- crops around small people


def test_person_boxes_largest_first_and_tiny_specks_dropped():
    mask = np.zeros((100, 100), np.float32)
    mask[10:20, 10:14] = 1  # 40 px
    mask[50:90, 60:70] = 1  # 400 px
    mask[0:2, 98:100] = 1  # 4 px speck
    assert person_boxes(mask) == [(60, 50, 70, 90), (10, 10, 14, 20)]


def test_crop_around_centres_the_person_inside_the_frame():
    x0, y0, x1, y1 = crop_around((60, 50, 70, 90), 100, 200, context=2.0, min_side=10)
    assert (x1 - x0, y1 - y0) == (80, 80)  # 2 x the 40 px height
    assert x0 <= 60 and x1 >= 70 and y0 <= 50 and y1 >= 90
    assert crop_around((0, 0, 4, 4), 100, 200, context=4.0, min_side=48)[:2] == (0, 0)  # clipped at the corner


def test_person_crops_show_small_people_larger(tmp_path):
    mask = np.zeros((120, 160), bool)
    mask[60:72, 20:25] = True  # a 12 px pedestrian
    mask[30:40, 120:124] = True
    write(tmp_path, "street", mask)
    write(tmp_path, "empty", np.zeros((120, 160), bool))
    crops = PersonCrops(PairedFolder(tmp_path), context=4.0, min_side=32)
    assert len(crops) == 2 + 2  # both whole frames + one crop per person
    shares = [m.mean() for _, m in (crops[i] for i in range(len(crops)))]
    whole = mask.mean()
    assert max(shares) > 4 * whole  # a person fills far more of a crop than of the frame (5x here)
    for i in range(len(crops)):
        img, m = crops[i]
        assert img.shape[:2] == m.shape


# --------------------------------------------------------------------------- best.pt by macro average


def test_selection_score_is_the_macro_average_of_named_sources():
    per_source = {"a": {"iou": 0.9}, "b": {"iou": 0.5}, "viton": {"iou": 0.99}}
    assert _selection_score({"iou": 0.95}, per_source, []) == 0.95
    assert _selection_score({"iou": 0.95}, per_source, ["a", "b"]) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="no such validation source"):
        _selection_score({"iou": 0.95}, per_source, ["coco"])
