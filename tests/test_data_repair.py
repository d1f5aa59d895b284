"""Mending studio-photo masks whose neck was left unlabelled (data.repair)."""

import numpy as np
import pytest
from PIL import Image

from personseg.data import PairedFolder
from personseg.data.repair import repair_backdrop_mask


def _studio_photo(h: int = 200, w: int = 160):
    """A person (dark torso + skin-toned neck + head) on a smooth light-grey gradient backdrop."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    backdrop = 225 + 15 * (xx / w) - 10 * (yy / h)  # a gentle lighting gradient
    rgb = np.repeat(backdrop[..., None], 3, axis=2)
    truth = np.zeros((h, w), np.float32)
    head = (yy - 40) ** 2 / 22**2 + (xx - 80) ** 2 / 18**2 < 1
    neck = (yy >= 55) & (yy < 80) & (np.abs(xx - 80) < 10)
    torso = (yy >= 80) & (np.abs(xx - 80) < 45)
    rgb[head | neck] = (200, 150, 120)
    rgb[torso] = (40, 60, 120)
    truth[head | neck | torso] = 1
    label = truth.copy()
    label[neck] = 0  # the parsing label forgets the neck
    return rgb.astype(np.uint8), label, truth, neck


def test_repair_fills_unlabelled_neck_and_leaves_backdrop_alone():
    rgb, label, truth, neck = _studio_photo()
    fixed = repair_backdrop_mask(rgb, label)
    assert fixed.dtype == np.float32 and fixed.shape == label.shape
    assert fixed[neck].mean() > 0.95  # the neck is person again
    assert fixed[truth == 0].max() == 0  # no backdrop pixel became person
    iou_before = (label > 0.5).sum() / truth.sum()
    iou_after = ((fixed > 0.5) & (truth > 0)).sum() / ((fixed > 0.5) | (truth > 0)).sum()
    assert iou_after > 0.99 > iou_before + 0.02


def test_repair_ignores_distant_objects_and_keeps_soft_values():
    rgb, label, _, _ = _studio_photo()
    rgb[5:20, 5:20] = (20, 20, 20)  # a dark object far from the person, not labelled
    label[150, 80] = 0.6  # a soft value inside the person stays at least as high
    fixed = repair_backdrop_mask(rgb, label)
    assert fixed[5:20, 5:20].max() == 0
    assert fixed[150, 80] >= 0.6


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_repair_leaves_empty_and_full_masks(fill):
    rgb, _, _, _ = _studio_photo()
    mask = np.full(rgb.shape[:2], fill, np.float32)
    np.testing.assert_array_equal(repair_backdrop_mask(rgb, mask), mask)


def test_paired_folder_applies_mask_fix(tmp_path):
    seen = []

    def fix(rgb, mask):
        seen.append(rgb.shape)
        return np.ones_like(mask)

    rgb, label, _, _ = _studio_photo(40, 32)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(rgb).save(tmp_path / "images" / "a.png")
    Image.fromarray((label * 255).astype(np.uint8)).save(tmp_path / "masks" / "a.png")
    folder = PairedFolder(tmp_path, mask_fix=fix)
    _, mask = folder[0]
    assert len(seen) == 1 and float(mask.min()) == 1.0
