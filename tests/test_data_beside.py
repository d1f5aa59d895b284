"""Things beside people (``data.beside``): textured shapes pasted behind a person, touching them, label unchanged."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from personseg.data.beside import BesideObjects
from personseg.data.folder import IGNORE, PairedFolder
from personseg.data.mixture import TrainMixture
from personseg.data.transforms import train_transform
from synthetic import person


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    img, mask = person(96, 128, seed, center=(48, 64), radius=24)
    return img, mask.astype(np.float32)


def _photo() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 255, (80, 120, 3), dtype=np.uint8)


@pytest.mark.parametrize("seed", range(8))
def test_shapes_go_behind_the_person_and_touch_them(seed):
    img, mask = _scene(seed)
    out = BesideObjects([_photo()], prob=1.0)(img, mask, np.random.default_rng(seed))
    assert out.shape == img.shape and out.dtype == np.uint8
    person = mask > 0.5
    assert np.array_equal(out[person], img[person])  # the person is left as they are
    changed = np.abs(out.astype(int) - img.astype(int)).max(axis=2) > 0
    assert changed.sum() > 50  # something was pasted
    # Every pasted shape reaches the person's outline: each changed region lies within 2 px of the person.
    ring = cv2.dilate(person.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    count, labels = cv2.connectedComponents(changed.astype(np.uint8))
    for region in range(1, count):
        assert (ring & (labels == region)).any(), f"shape {region} does not touch the person"


def test_nothing_is_pasted_on_unknown_pixels():
    img, mask = _scene(1)
    mask[:, :40] = IGNORE
    out = BesideObjects([_photo()], prob=1.0, max_objects=3)(img, mask, np.random.default_rng(3))
    assert np.array_equal(out[:, :40], img[:, :40])


def test_the_share_decides_and_a_scene_without_a_person_is_left_alone():
    img, mask = _scene(2)
    objects = BesideObjects([_photo()], prob=0.3)
    touched = sum(not np.array_equal(objects(img, mask, np.random.default_rng(i)), img) for i in range(200))
    assert 40 <= touched <= 80  # 0.3 of 200 = 60
    assert BesideObjects([_photo()], prob=0.0)(img, mask, np.random.default_rng(0)) is img
    empty = np.zeros_like(mask)
    assert BesideObjects([_photo()], prob=1.0)(img, empty, np.random.default_rng(0)) is img


def test_same_generator_same_picture_and_without_photos_patterns_and_cloth_only():
    img, mask = _scene(3)
    objects = BesideObjects([_photo()], prob=1.0)
    a = objects(img, mask, np.random.default_rng(9))
    assert np.array_equal(a, objects(img, mask, np.random.default_rng(9)))
    # With no background photos the photo texture is never drawn (it would have nothing to crop).
    no_photos = BesideObjects([], prob=1.0, max_objects=3)
    for seed in range(40):
        assert not np.array_equal(no_photos(img, mask, np.random.default_rng(seed)), img)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="prob must lie in \\[0, 1\\], got 1.5"):
        BesideObjects([], prob=1.5)
    with pytest.raises(ValueError, match="max_objects must be >= 1"):
        BesideObjects([], prob=0.5, max_objects=0)
    with pytest.raises(ValueError, match="pattern kinds must be among"):
        BesideObjects([], prob=0.5, pattern_kinds=["zebra"])


def test_the_mixture_pastes_before_augmenting_and_keeps_the_rest_of_each_sample(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(3):
        img, mask = _scene(i)
        Image.fromarray(img).save(tmp_path / "images" / f"p{i}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "masks" / f"p{i}.png")
    folder = PairedFolder(tmp_path)

    def mixture(objects):
        return TrainMixture([folder], [1.0], 6, pair_transform=train_transform(64), seed=2, objects=objects)

    plain, pasted = mixture(None), mixture(BesideObjects([_photo()], prob=1.0))
    differs = 0
    for i in range(6):
        (img_a, mask_a), (img_b, mask_b) = plain.sample(i), pasted.sample(i)
        assert np.array_equal(mask_a, mask_b)  # same photo, same crop and flip, same label
        differs += not np.array_equal(img_a, img_b)
    assert differs >= 5
