"""Things beside people (``data.beside``): textured shapes pasted behind a person, touching them, label unchanged."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from personseg.data.beside import BesideObjects, cushion_shading
from personseg.data.folder import IGNORE, PairedFolder
from personseg.data.mixture import TrainMixture
from personseg.data.transforms import train_transform
from personseg.training.config import TrainConfig
from synthetic import ellipse, paint, person


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
    unknown = mask.copy()
    unknown[:, :40] = IGNORE
    objects = BesideObjects([_photo()], prob=1.0, max_objects=3)
    reached = 0
    for seed in range(12):
        reached += not np.array_equal(objects(img, mask, np.random.default_rng(seed))[:, :40], img[:, :40])
        assert np.array_equal(objects(img, unknown, np.random.default_rng(seed))[:, :40], img[:, :40]), seed
    assert reached >= 3  # with a known label those columns do get shapes


def test_shapes_beside_a_concave_person_show_and_touch_them():
    """Beside arms and a body (an outline whose outward side is not away from the centre of mass) nearly every
    shape shows, and every one touches the person."""
    h, w = 120, 120
    mask = np.zeros((h, w), np.float32)
    mask[20:40, 10:110] = 1  # arms
    mask[40:110, 50:70] = 1  # body
    img = np.where(mask[..., None] > 0, 220, 30).astype(np.uint8).repeat(3, axis=2)
    objects = BesideObjects([_photo()], prob=1.0, max_objects=1)
    ring = cv2.dilate((mask > 0).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    seen = 0
    for seed in range(100):
        changed = np.abs(objects(img, mask, np.random.default_rng(seed)).astype(int) - img).max(axis=2) > 0
        seen += changed.any()
        assert not changed.any() or (changed & ring).any(), seed
    assert seen >= 97


def test_cloth_comes_from_inside_the_person(monkeypatch):
    import personseg.data.beside as beside

    monkeypatch.setattr(beside, "TEXTURES", (("cloth", 1.0), ("photo", 0.0)))
    mask = np.zeros((96, 128), np.float32)
    mask[20:96, 40:90] = 1  # a person cut by the bottom edge
    img = np.where(mask[..., None] > 0, 230, 20).astype(np.uint8).repeat(3, axis=2)
    for seed in range(10):
        out = beside.BesideObjects([_photo()], prob=1.0)(img, mask, np.random.default_rng(seed))
        changed = np.abs(out.astype(int) - img.astype(int)).max(axis=2) > 0
        assert changed.any() and out[changed].mean() > 230 * 0.7 - 1, seed  # the person's colour, lit 0.7-1.1


def test_large_shapes_go_around_the_person_on_both_sides():
    """``large=1``: one shape 0.8-1.4x the person's height centred near their middle (an armchair around someone
    sitting) shows on both sides of them in most samples and leaves the person as they are; a small shape (at
    most 0.6x their height, centred just outside the outline) never reaches both sides."""
    mask = ellipse(200, 200, (100, 100), (40, 12))  # a person 81 px tall and 25 wide, columns 88-112
    img, mask = paint(mask, np.random.default_rng(0)), mask.astype(np.float32)
    person_px = mask > 0.5
    around = BesideObjects([_photo()], prob=1.0, max_objects=1, large=1.0)
    small = BesideObjects([_photo()], prob=1.0, max_objects=1)
    both = []
    for seed in range(30):
        out = around(img, mask, np.random.default_rng(seed))
        assert np.array_equal(out[person_px], img[person_px]), seed
        changed = np.abs(out.astype(int) - img.astype(int)).max(axis=2) > 0
        both.append(changed[:, :85].any() and changed[:, 116:].any())
        moved = np.abs(small(img, mask, np.random.default_rng(seed)).astype(int) - img.astype(int)).max(axis=2) > 0
        assert not (moved[:, :85].any() and moved[:, 116:].any()), seed
    assert sum(both) >= 24, sum(both)


def test_a_cushion_is_darkest_at_its_edge_and_seams_and_full_inside():
    shape = np.zeros((120, 160), np.float32)
    shape[10:110, 10:150] = 1.0
    light = cushion_shading(np.random.default_rng(3), shape)
    assert light.shape == shape.shape and light.dtype == np.float32
    assert light.min() == pytest.approx(0.45) and light.max() == pytest.approx(1.05)
    inside = light[10:110, 10:150]
    middle = inside[20:-20, 20:-20]
    assert np.median(middle) > 0.95  # most of the cushion is full
    assert inside[0].mean() < 0.7 and inside[:, 0].mean() < 0.7  # its edge is dark
    assert light[0].max() == pytest.approx(0.45)  # outside the shape: the darkest (the shape's alpha hides it)
    # a seam crosses the inside: a line of dark pixels far from the edge
    assert (middle < 0.6).mean() > 0.01


def test_cushions_are_muted_and_shaded_where_plain_large_shapes_are_not():
    """The same shapes with ``cushions=1``: duller (nearer their grey) than flat ones, the person untouched."""
    mask = ellipse(200, 200, (100, 100), (40, 12))
    img, mask = paint(mask, np.random.default_rng(0)), mask.astype(np.float32)
    flat = BesideObjects([_photo()], prob=1.0, max_objects=1, large=1.0)
    padded = BesideObjects([_photo()], prob=1.0, max_objects=1, large=1.0, cushions=1.0)
    spread = {"flat": [], "padded": []}
    for seed in range(20):
        for name, objects in (("flat", flat), ("padded", padded)):
            out = objects(img, mask, np.random.default_rng(seed)).astype(np.float32)
            changed = np.abs(out - img).max(axis=2) > 0
            if changed.sum() > 500:
                pixels = out[changed]
                spread[name].append(np.abs(pixels - pixels.mean(axis=1, keepdims=True)).mean())
        assert np.array_equal(padded(img, mask, np.random.default_rng(seed))[mask > 0.5], img[mask > 0.5])
    assert np.mean(spread["padded"]) < 0.7 * np.mean(spread["flat"])  # colours muted towards grey
    with pytest.raises(ValueError, match="cushions must lie in"):
        BesideObjects([], prob=0.5, cushions=2.0)
    with pytest.raises(ValueError, match="--beside-cushions is a share of --beside-large's shapes"):
        TrainConfig(beside_objects=0.3, beside_cushions=0.5)
    assert TrainConfig(beside_objects=0.3, beside_large=0.4, beside_cushions=0.5).beside_cushions == 0.5


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
    with pytest.raises(ValueError, match="large must lie in \\[0, 1\\], got -0.1"):
        BesideObjects([], prob=0.5, large=-0.1)
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
