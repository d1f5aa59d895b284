"""Distillation: a student learns from a teacher's soft masks, at its own (smaller) input size."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import torch
from PIL import Image

from personseg.training import trainer
from personseg.training.config import IMAGENET_MEAN, IMAGENET_STD
from personseg.training.distill import Distiller
from test_training import make_folder, tiny_config

FIT = {
    "base_channels": 8,
    "samples_per_epoch": 16,
    "batch_size": 4,
    "lr": 0.02,
    "letterbox_prob": 1.0,
    "aug_strength": 0.0,
}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A 48-px U-Net fitted to synthetic ellipses (the overfit recipe of test_training)."""
    root = tmp_path_factory.mktemp("distill")
    data = make_folder(root / "data", 4)
    result = trainer.main(tiny_config(data, data, root / "teacher", input_size=48, epochs=15, **FIT))
    assert result["best_iou"] > 0.9
    return root / "teacher" / "best.pt", data


def blank_copy(data, dest):
    """The same photos with every mask empty: nothing to learn from the labels."""
    (dest / "images").mkdir(parents=True)
    (dest / "masks").mkdir()
    for img in sorted((data / "images").iterdir()):
        (dest / "images" / img.name).write_bytes(img.read_bytes())
        with Image.open(data / "masks" / (img.stem + ".png")) as m:
            Image.fromarray(np.zeros((m.height, m.width), np.uint8)).save(dest / "masks" / (img.stem + ".png"))
    return dest


def test_student_learns_the_person_from_the_teacher_alone(teacher, tmp_path):
    """Labels all empty: with distill weight 1 the 32-px student still finds the ellipses (val against the true
    masks); without the teacher the same run learns to say 'background' everywhere."""
    ckpt, data = teacher
    blank = blank_copy(data, tmp_path / "blank")
    common = dict(input_size=32, epochs=12, **FIT)
    taught = trainer.main(
        tiny_config(blank, data, tmp_path / "taught", teacher=str(ckpt), distill_weight=1.0, **common)
    )
    alone = trainer.main(tiny_config(blank, data, tmp_path / "alone", **common))
    assert taught["best_iou"] > 0.8
    assert alone["last"]["val_iou"] < 0.2


def test_split_shrinks_the_batch_to_the_student_size(teacher):
    ckpt, _ = teacher
    d = Distiller(ckpt, 0.5, 32, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"), nullcontext)
    x, y = torch.randn(2, 3, 48, 48), torch.ones(2, 1, 48, 48)
    sx, sy, soft = d.split(x, y)
    assert d.size == 48
    assert sx.shape == (2, 3, 32, 32) and sy.shape == (2, 1, 32, 32) and soft.shape == (2, 1, 32, 32)
    assert torch.allclose(sy, torch.ones_like(sy)) and 0 <= soft.min() and soft.max() <= 1
    task = torch.tensor(0.25)
    logits = torch.zeros(2, 1, 32, 32)
    # Weight 0.5: half the task loss plus half the BCE against the teacher (log 2 for logits 0).
    assert d.blend(task, logits, soft).item() == pytest.approx(0.5 * 0.25 + 0.5 * np.log(2), rel=1e-5)


def test_teacher_size_overrides_the_checkpoints_own(teacher):
    """``teacher_size``: the 48-px teacher runs on 64-px batches (as a 320-trained default is run at 384), the
    student still gets its own 32 px."""
    ckpt, _ = teacher
    d = Distiller(ckpt, 0.5, 32, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"), nullcontext, size=64)
    sx, sy, soft = d.split(torch.randn(2, 3, 64, 64), torch.ones(2, 1, 64, 64))
    assert d.size == 64
    assert sx.shape == (2, 3, 32, 32) and sy.shape == soft.shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="below the student"):
        Distiller(ckpt, 0.5, 32, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"), nullcontext, size=16)


def test_flip_averaged_target_is_the_mean_of_both_views(teacher):
    ckpt, _ = teacher
    plain = Distiller(ckpt, 0.5, 48, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"), nullcontext)
    flipped = Distiller(ckpt, 0.5, 48, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"), nullcontext, flip=True)
    x, y = torch.randn(2, 3, 48, 48), torch.zeros(2, 1, 48, 48)
    one = plain.split(x, y)[2]
    mirrored = torch.flip(plain.split(torch.flip(x, dims=[3]), y)[2], dims=[3])
    both = flipped.split(x, y)[2]
    assert not torch.allclose(one, mirrored, atol=1e-3)  # the teacher is not mirror-symmetric on noise
    assert torch.allclose(both, (one + mirrored) / 2, atol=1e-6)
    # Mirror-symmetric by construction: the flipped input's target is the flipped target.
    assert torch.allclose(flipped.split(torch.flip(x, dims=[3]), y)[2], torch.flip(both, dims=[3]), atol=1e-6)


def test_teacher_with_other_normalisation_is_refused(teacher):
    ckpt, _ = teacher
    with pytest.raises(ValueError, match="teacher normalises with mean"):
        Distiller(ckpt, 0.5, 32, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], torch.device("cpu"), nullcontext)
    with pytest.raises(ValueError, match="below the student"):
        Distiller(ckpt, 0.5, 64, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"), nullcontext)
    with pytest.raises(ValueError, match="distill-weight"):
        Distiller(ckpt, 0.0, 32, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"), nullcontext)


def test_band_keeps_the_teacher_only_near_contours_and_on_unknown_pixels(teacher):
    ckpt, _ = teacher
    plain = Distiller(ckpt, 0.5, 48, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"), nullcontext)
    near = Distiller(ckpt, 0.5, 48, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"), nullcontext, band=0.03)
    x = torch.randn(1, 3, 48, 48)
    y = torch.zeros(1, 1, 48, 48)
    y[..., 16:32, 16:32] = 1.0  # a square person; diagonal 67.9 -> the band reaches 2 px each side of its edge
    y[..., 40:, :8] = -1.0  # a corner of unknown label
    teacher_target = plain.split(x, y)[2]
    soft = near.split(x, y)[2]
    band = torch.zeros(48, 48, dtype=torch.bool)
    band[14:34, 14:34] = True
    band[18:30, 18:30] = False
    band[40:, :8] = True
    torch.testing.assert_close(soft[0, 0][band], teacher_target[0, 0][band])
    torch.testing.assert_close(soft[0, 0][~band], y[0, 0][~band])  # the label itself, far from the contour
    assert not torch.allclose(teacher_target[0, 0][~band], y[0, 0][~band], atol=0.05)  # so the band did something
    with pytest.raises(ValueError, match="distill-band"):
        Distiller(ckpt, 0.5, 48, IMAGENET_MEAN, IMAGENET_STD, torch.device("cpu"), nullcontext, band=0.6)
