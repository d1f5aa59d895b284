"""Data: folder validation, mask reading, the fixed split, paired transforms, compositing, the training mixture.

Every fixture is generated into tmp_path: a bright ellipse "person" on a dark noisy background with its mask.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import personseg.data.composite as composite
from personseg.data import DatasetError, PairedFolder, is_val, patterns, read_mask, scan_folder, split_stems
from personseg.data.composite import Compositor, foregrounds_from_pairs, load_backgrounds, load_cutouts
from personseg.data.mixture import EvalDataset, TrainMixture
from personseg.data.transforms import apply, eval_transform, train_transform
from synthetic import person


def write_pair(root: Path, stem: str, h: int = 32, w: int = 48, seed: int = 0, ext: str = ".png") -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    img, mask = person(h, w, seed)
    Image.fromarray(img).save(root / "images" / f"{stem}{ext}")
    Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"{stem}.png")


def write_folder(root: Path, n: int = 3) -> Path:
    for i in range(n):
        write_pair(root, f"p{i}", seed=i, ext=".jpg" if i % 2 else ".png")
    return root


# --------------------------------------------------------------------------- folders


def test_paired_folder_reads_pairs(tmp_path):
    folder = PairedFolder(write_folder(tmp_path, 3))
    assert len(folder) == 3
    assert folder.stems == ["p0", "p1", "p2"]
    assert folder.problems == []
    for i in range(3):
        image, mask = folder[i]
        assert image.shape == (32, 48, 3) and image.dtype == np.uint8
        assert mask.shape == (32, 48) and mask.dtype == np.float32
        assert set(np.unique(mask)) == {0.0, 1.0}
        np.testing.assert_array_equal(mask, person(32, 48, seed=i)[1])
        assert image[mask > 0].mean() > 150 > image[mask == 0].mean()  # image and mask belong together

    subset = PairedFolder(tmp_path, stems=["p2", "p0"])
    assert subset.stems == ["p0", "p2"]


def test_paired_folder_cache_downscales(tmp_path):
    folder = PairedFolder(write_folder(tmp_path, 2), cache_max_side=16)
    image, mask = folder[0]
    assert image.shape == (11, 16, 3) and mask.shape == (11, 16)
    assert 0.0 <= mask.min() and mask.max() <= 1.0


def test_missing_subfolders_are_explained(tmp_path):
    with pytest.raises(DatasetError, match="images/ and masks/"):
        PairedFolder(tmp_path)


def _broken_folder(root: Path) -> dict[str, str]:
    """A folder with one good pair and one of every problem; returns problem -> the stem it must name."""
    write_pair(root, "good")
    write_pair(root, "image_only")
    (root / "masks" / "image_only.png").unlink()
    write_pair(root, "mask_only")
    (root / "images" / "mask_only.png").unlink()
    write_pair(root, "wrong_size")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / "masks" / "wrong_size.png")
    write_pair(root, "corrupt")
    (root / "images" / "corrupt.png").write_bytes(b"this is not a PNG")
    write_pair(root, "corrupt_mask")
    (root / "masks" / "corrupt_mask.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    write_pair(root, "rgb_mask")
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(root / "masks" / "rgb_mask.png")
    return {
        "no mask": "image_only",
        "mask without an image": "mask_only",
        "20x20 but the image is 48x32": "wrong_size",
        "unreadable image": "corrupt",
        "unreadable mask": "corrupt_mask",
        "3 channels": "rgb_mask",
    }


def test_broken_folder_lists_every_problem_in_one_error(tmp_path):
    expected = _broken_folder(tmp_path)
    with pytest.raises(DatasetError) as info:
        PairedFolder(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert f"{len(expected)} problem(s)" in message
    assert "skip_invalid" in message  # says what to do
    lines = message.splitlines()[1:]
    assert len(lines) == len(expected)
    for what, stem in expected.items():
        assert any(what in line and stem in line for line in lines), f"{what!r} for {stem!r} not in:\n{message}"
    assert "good" not in message.replace(str(tmp_path), "")


def test_skip_invalid_keeps_the_good_pairs(tmp_path, caplog):
    expected = _broken_folder(tmp_path)
    folder = PairedFolder(tmp_path, skip_invalid=True)
    assert folder.stems == ["good"]
    assert len(folder.problems) == len(expected)
    assert sum("skipping" in r.message for r in caplog.records) == len(expected)
    image, mask = folder[0]
    assert image.shape[:2] == mask.shape


def test_scan_folder_without_checks_only_pairs_names(tmp_path):
    _broken_folder(tmp_path)
    pairs, problems = scan_folder(tmp_path, check=False)
    assert [p.stem for p in pairs] == ["corrupt", "corrupt_mask", "good", "rgb_mask", "wrong_size"]
    assert len(problems) == 2


def test_truncated_jpeg_is_reported(tmp_path):
    write_pair(tmp_path, "good")
    write_pair(tmp_path, "truncated", h=96, w=128, ext=".jpg")
    path = tmp_path / "images" / "truncated.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 3 // 4])  # headers intact, scan data cut short
    folder = PairedFolder(tmp_path, skip_invalid=True)
    assert folder.stems == ["good"]
    assert "truncated" in folder.problems[0]


def _save_mask(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values).save(path)
    return path


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ([0, 1, 1, 0], [0, 1, 1, 0]),  # 0/1
        ([0, 255, 255, 0], [0, 1, 1, 0]),  # 0/255
        ([0, 64, 128, 255], [0, 64 / 255, 128 / 255, 1]),  # soft alpha stays soft
        ([0, 0, 0, 0], [0, 0, 0, 0]),  # nobody in the picture
    ],
)
def test_read_mask_values(tmp_path, stored, expected):
    path = _save_mask(tmp_path / "m.png", np.array(stored, np.uint8).reshape(2, 2))
    mask = read_mask(path)
    assert mask.dtype == np.float32
    np.testing.assert_allclose(mask, np.array(expected, np.float32).reshape(2, 2), atol=1e-6)


def test_read_mask_one_bit(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1").save(path)
    np.testing.assert_array_equal(read_mask(path), [[0, 1], [1, 0]])


def test_palette_masks_are_read_by_index_or_refused(tmp_path):
    write_pair(tmp_path, "p")
    index = (person(32, 48)[1]).astype(np.uint8)
    palette_mask = Image.frombytes("P", (48, 32), index.tobytes())
    palette_mask.putpalette([0, 0, 0, 128, 0, 0] + [0] * (256 * 3 - 6))
    palette_mask.save(tmp_path / "masks" / "p.png")
    try:
        folder = PairedFolder(tmp_path)
    except DatasetError:
        return  # refusing palette masks with a clear message is fine too
    np.testing.assert_array_equal(folder[0][1], index)


# --------------------------------------------------------------------------- split


def test_split_is_fixed_disjoint_and_near_the_fraction():
    stems = [f"img_{i:05d}" for i in range(1000)]
    train, val = split_stems("coco", stems, 0.1)
    assert (train, val) == split_stems("coco", stems, 0.1)
    assert not set(train) & set(val)
    assert sorted(train + val) == stems
    assert 60 <= len(val) <= 140
    assert val == [s for s in stems if is_val("coco", s, 0.1)]
    # Adding images never moves existing ones across the split.
    _, val_more = split_stems("coco", stems + [f"new_{i}" for i in range(100)], 0.1)
    assert [s for s in val_more if s.startswith("img_")] == val
    # The source name is part of the hash.
    assert split_stems("viton", stems, 0.1)[1] != val
    assert split_stems("coco", stems, 0.0) == (stems, [])


# --------------------------------------------------------------------------- transforms


def test_train_transform_keeps_masks_binary_and_aligned():
    image, mask = person(64, 80, seed=3)
    mask = mask.astype(np.float32)
    # strength 0 leaves only geometry (bar a rare ToGray), so brightness must still tell person from
    # background wherever the transform put them.
    geometric = train_transform(48, letterbox_prob=0.4, strength=0.0)
    full = train_transform(48)
    for seed in range(12):
        out_image, out_mask = apply(geometric, image, mask, seed=seed)
        assert out_image.shape == (48, 48, 3) and out_image.dtype == np.uint8
        assert out_mask.shape == (48, 48)
        assert set(np.unique(out_mask)) <= {0.0, 1.0}
        bright = out_image.mean(axis=2) > 127
        disagree = (bright != (out_mask > 0.5)).mean()
        assert disagree < 0.03, f"seed {seed}: {disagree:.1%} of pixels misaligned"

        _, out_mask = apply(full, image, mask, seed=seed)
        assert set(np.unique(out_mask)) <= {0.0, 1.0}


def test_whole_images_are_stretched_for_a_model_that_runs_stretched():
    wide = np.full((32, 96, 3), 200, np.uint8)
    everywhere = np.ones((32, 96), np.float32)
    cover = {}
    for resize in ("letterbox", "stretch"):
        whole_only = train_transform(48, letterbox_prob=1.0, strength=0.0, resize=resize)
        cover[resize] = np.mean([apply(whole_only, wide, everywhere, seed=s)[1].mean() for s in range(12)])
    # Letterboxed, a 3:1 photo fills a third of the square (less when zoomed out); stretched, all of it.
    assert cover["letterbox"] < 0.34 and cover["stretch"] > 2.5 * cover["letterbox"]
    with pytest.raises(ValueError, match="resize='crop'"):
        train_transform(48, resize="crop")


def test_train_transform_same_seed_same_output():
    image, mask = person(64, 80, seed=1)
    mask = mask.astype(np.float32)
    transform = train_transform(32)
    a = apply(transform, image, mask, seed=7)
    apply(transform, image, mask, seed=8)  # state in between must not matter
    b = apply(transform, image, mask, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = apply(train_transform(32), image, mask, seed=7)  # nor which instance
    np.testing.assert_array_equal(a[0], c[0])
    outputs = [apply(transform, image, mask, seed=s)[0] for s in range(4)]
    assert any(not np.array_equal(outputs[0], o) for o in outputs[1:])


def test_eval_letterbox_keeps_aspect_and_pads():
    image = np.full((40, 80, 3), 200, np.uint8)
    mask = np.ones((40, 80), np.float32)
    out_image, out_mask = apply(eval_transform(32, "letterbox"), image, mask)
    assert out_image.shape == (32, 32, 3) and out_mask.shape == (32, 32)
    # 80x40 -> 32x16, padded by 8 rows top and bottom with zeros.
    rows = out_mask.any(axis=1)
    np.testing.assert_array_equal(np.nonzero(rows)[0], np.arange(8, 24))
    assert (out_image[:8] == 0).all() and (out_image[24:] == 0).all()
    assert (out_image[8:24] == 200).all() and (out_mask[8:24] == 1).all()

    out_image, out_mask = apply(eval_transform(32, "stretch"), image, mask)
    assert out_image.shape == (32, 32, 3) and (out_mask == 1).all()
    with pytest.raises(ValueError, match="letterbox"):
        eval_transform(32, "crop")


def test_eval_dataset_tensors(tmp_path):
    ds = EvalDataset(PairedFolder(write_folder(tmp_path, 2)), eval_transform(32))
    image, mask = ds[1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert mask.shape == (1, 32, 32) and mask.dtype == torch.float32


# --------------------------------------------------------------------------- compositing

BG_COLOUR = np.array([10, 20, 30], np.uint8)
FG_COLOUR = np.array([200, 180, 160], np.uint8)


def _opaque_person(h: int = 30, w: int = 12) -> composite.Foreground:
    return np.broadcast_to(FG_COLOUR, (h, w, 3)).copy(), np.ones((h, w), np.float32), False


def test_compositor_pastes_where_alpha_says():
    background = np.broadcast_to(BG_COLOUR, (50, 70, 3)).copy()
    comp = Compositor([_opaque_person()], [background], size=40)
    for seed in range(20):
        image, alpha = comp(np.random.default_rng(seed))
        assert image.shape == (40, 40, 3) and image.dtype == np.uint8
        assert alpha.shape == (40, 40) and alpha.dtype == np.float32
        assert 0.0 <= alpha.min() and alpha.max() <= 1.0
        changed = (image != BG_COLOUR).any(axis=2)
        # An opaque foreground gives alpha 0 or 1: pixels differ from the background exactly where alpha > 0.
        np.testing.assert_array_equal(changed, alpha > 0, err_msg=f"seed {seed}")


def _pasted_box(alpha: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(alpha > 0.5)
    return int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


@pytest.mark.parametrize("cut_at_bottom", [False, True])
def test_compositor_turns_whole_body_people_only(cut_at_bottom):
    background = np.broadcast_to(BG_COLOUR, (80, 80, 3)).copy()
    thin = (np.broadcast_to(FG_COLOUR, (40, 10, 3)).copy(), np.ones((40, 10), np.float32), cut_at_bottom)
    upright = Compositor([thin], [background], size=64, max_people=1)
    turned = Compositor([thin], [background], size=64, max_people=1, rotate_prob=1.0)
    lying = 0
    for seed in range(40):
        for comp in (upright, turned):
            image, alpha = comp(np.random.default_rng(seed))
            assert 0.0 <= alpha.min() and alpha.max() <= 1.0
            changed = (image != BG_COLOUR).any(axis=2)
            assert changed[alpha > 0.02].all() and not changed[alpha == 0].any(), f"seed {seed}"
        h, w = _pasted_box(upright(np.random.default_rng(seed))[1])
        assert h > w, f"seed {seed}: an unturned person is taller than wide"
        h, w = _pasted_box(alpha)
        lying += w > h
    # Turned by a uniform angle, a 4:1 figure lies wider than tall about 40% of the time; upper-body shots never.
    assert (lying == 0) if cut_at_bottom else (8 <= lying <= 32)
    with pytest.raises(ValueError, match="rotate_prob"):
        Compositor([thin], [background], size=64, rotate_prob=1.5)


def test_compositor_keeps_soft_alpha():
    rgb = np.broadcast_to(FG_COLOUR, (30, 12, 3)).copy()
    background = np.broadcast_to(BG_COLOUR, (50, 50, 3)).copy()
    comp = Compositor([(rgb, np.full((30, 12), 0.5, np.float32), False)], [background], size=40, max_people=1)
    for seed in range(5):
        image, alpha = comp(np.random.default_rng(seed))
        pasted = alpha > 0
        assert pasted.any()
        np.testing.assert_allclose(alpha[pasted], 0.5, atol=1e-6)
        assert (image[pasted] != BG_COLOUR).any(axis=1).all()


def test_compositor_pastes_several_people(monkeypatch):
    calls: list[int] = []
    real_paste = composite._paste

    def counting_paste(*args):
        calls[-1] += 1
        real_paste(*args)

    monkeypatch.setattr(composite, "_paste", counting_paste)
    background = np.broadcast_to(BG_COLOUR, (50, 50, 3)).copy()
    for max_people, allowed in [(3, {1, 2, 3}), (1, {1})]:
        comp = Compositor([_opaque_person(), _opaque_person(20, 20)], [background], size=40, max_people=max_people)
        counts = []
        for seed in range(40):
            calls.append(0)
            comp(np.random.default_rng(seed))
            counts.append(calls[-1])
        assert set(counts) <= allowed
        assert max(counts) == max(allowed)


def test_compositor_is_deterministic_per_rng():
    background = np.random.default_rng(0).integers(0, 255, (60, 60, 3), dtype=np.uint8)
    comp = Compositor([_opaque_person()], [background], size=32)
    for each in (comp, Compositor([_opaque_person()], [background], size=32, pattern_prob=1.0)):
        a = each(np.random.default_rng(5))
        b = each(np.random.default_rng(5))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="at least one foreground"):
        Compositor([], [background], size=32)


@pytest.mark.parametrize("kind", patterns.KINDS)
def test_pattern_backgrounds_have_hard_edges(kind):
    for seed in range(10):
        image = patterns.pattern_background(np.random.default_rng(seed), 128, kind)
        assert image.shape == (128, 128, 3) and image.dtype == np.float32
        assert 0 <= image.min() and image.max() <= 255
        # A pattern, not a wash: strongly different colours side by side (blurred or not).
        spread = np.percentile(image, 98, axis=(0, 1)) - np.percentile(image, 2, axis=(0, 1))
        assert spread.max() > 60, f"seed {seed}: {spread}"
        steps = np.abs(np.diff(image, axis=0)).max(), np.abs(np.diff(image, axis=1)).max()
        assert max(steps) > 15, f"seed {seed}"
    a = patterns.pattern_background(np.random.default_rng(3), 32, kind)
    np.testing.assert_array_equal(a, patterns.pattern_background(np.random.default_rng(3), 32, kind))
    with pytest.raises(ValueError, match="unknown pattern kind 'zebra'"):
        patterns.pattern_background(np.random.default_rng(0), 32, "zebra")


def test_the_leaf_print_is_muted_dense_and_outlined_and_older_runs_do_not_draw_it():
    from personseg.training.config import TrainConfig

    saturation = []
    for seed in range(6):
        image = patterns.pattern_background(np.random.default_rng(seed), 200, "leaves")
        saturation.append((image.max(axis=2) - image.min(axis=2)).mean())  # how far apart the channels are
        # dense and outlined: most of the picture is leaves, so edges are everywhere, not in a few places
        edges = np.abs(np.diff(image.mean(axis=2), axis=1)) > 6
        cells = edges[:, :195].reshape(5, 40, 5, 39).any(axis=(1, 3))  # a 5x5 grid of the picture
        assert edges.mean() > 0.05 and cells.all(), f"seed {seed}: {edges.mean():.3f}, {cells.sum()} of 25 cells"
    floral = [patterns.pattern_background(np.random.default_rng(s), 200, "floral") for s in range(6)]
    # muted: on average half as far from grey as the floral blotches' colours
    assert np.mean(saturation) < 0.5 * np.mean([(f.max(axis=2) - f.min(axis=2)).mean() for f in floral])
    assert "leaves" in patterns.KINDS and "leaves" not in patterns.DEFAULT_KINDS
    assert TrainConfig().pattern_kinds == list(patterns.DEFAULT_KINDS)  # a config naming no kinds: as before
    assert TrainConfig(pattern_kinds=["leaves"]).pattern_kinds == ["leaves"]


def test_compositor_puts_patterns_behind_people_only():
    background = np.broadcast_to(BG_COLOUR, (50, 50, 3)).copy()
    plain = Compositor([_opaque_person()], [background], size=40, pattern_prob=0.0)
    patterned = Compositor([_opaque_person()], [background], size=40, pattern_prob=1.0)
    n_patterned = 0
    for seed in range(20):
        image, alpha = plain(np.random.default_rng(seed))
        np.testing.assert_array_equal(image[alpha == 0], np.broadcast_to(BG_COLOUR, image[alpha == 0].shape))
        image, alpha = patterned(np.random.default_rng(seed))
        # The smallest banner (0.3 of each side, a third of it off the frame) covers 4% of the frame.
        n_patterned += (image[alpha == 0] != BG_COLOUR).any(axis=1).mean() > 0.03
        assert set(np.unique(alpha)) <= {0.0, 1.0} and alpha.any()
    assert n_patterned == 20

    with pytest.raises(ValueError, match="pattern_prob"):
        Compositor([_opaque_person()], [background], size=40, pattern_prob=1.5)
    with pytest.raises(ValueError, match="pattern kinds must be among"):
        Compositor([_opaque_person()], [background], size=40, pattern_prob=0.5, pattern_kinds=["zebra"])


def test_patterns_go_under_the_people_and_leave_the_target_alone(monkeypatch):
    magenta = np.array([255, 0, 255], np.uint8)

    def flat_magenta(rng, size, kind=None):
        return np.tile(magenta, (size, size, 1)).astype(np.float32)

    monkeypatch.setattr(composite, "pattern_background", flat_magenta)
    background = np.broadcast_to(BG_COLOUR, (50, 50, 3)).copy()
    comp = Compositor([_opaque_person()], [background], size=40, pattern_prob=1.0)
    for seed in range(20):
        image, alpha = comp(np.random.default_rng(seed))
        is_magenta = (image == magenta).all(axis=2)
        scenery = is_magenta | (image == BG_COLOUR).all(axis=2)
        assert is_magenta.any(), f"seed {seed}"
        # Every pixel is scenery (backdrop or pattern) exactly where no person is labelled.
        np.testing.assert_array_equal(~scenery, alpha > 0, err_msg=f"seed {seed}")


def test_compositor_draws_only_the_pattern_kinds_asked_for(monkeypatch):
    drawn: list[str] = []
    real = composite.pattern_background

    def recording(rng, size, kind=None):
        drawn.append(kind)
        return real(rng, size, kind)

    monkeypatch.setattr(composite, "pattern_background", recording)
    background = np.broadcast_to(BG_COLOUR, (50, 50, 3)).copy()
    comp = Compositor([_opaque_person()], [background], size=40, pattern_prob=1.0, pattern_kinds=["flag", "plaid"])
    for seed in range(30):
        comp(np.random.default_rng(seed))
    assert len(drawn) == 30 and set(drawn) == {"flag", "plaid"}


def test_cutouts_backgrounds_and_mattes_load(tmp_path):
    cutouts, backgrounds = tmp_path / "cutouts", tmp_path / "backgrounds"
    cutouts.mkdir()
    backgrounds.mkdir()
    rgba = np.zeros((40, 30, 4), np.uint8)
    rgba[5:35, 10:20] = [255, 0, 0, 255]
    Image.fromarray(rgba).save(cutouts / "a.png")
    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(backgrounds / "b.jpg")
    (backgrounds / "notes.txt").write_text("not an image")

    [(rgb, alpha, cut)] = load_cutouts(cutouts)
    assert rgb.shape[:2] == alpha.shape and not cut
    assert alpha.shape == (34, 14)  # cropped to the person plus a 2-pixel margin
    [bg] = load_backgrounds(backgrounds, max_side=50)
    assert bg.shape == (25, 50, 3)

    mattes = foregrounds_from_pairs(PairedFolder(write_folder(tmp_path / "pairs", 2)))
    assert len(mattes) == 2
    for rgb, alpha, _ in mattes:
        assert rgb.shape[:2] == alpha.shape and 0 <= alpha.min() and alpha.max() <= 1


# --------------------------------------------------------------------------- training mixture


def _mixture(folder: PairedFolder, seed: int = 0) -> TrainMixture:
    background = np.random.default_rng(1).integers(0, 255, (60, 60, 3), dtype=np.uint8)
    comp = Compositor([_opaque_person()], [background], size=32)
    return TrainMixture(
        [folder, comp],
        [1.0, 1.0],
        length=8,
        pair_transform=train_transform(32),
        composite_transform=None,
        seed=seed,
    )


def test_train_mixture_is_deterministic_by_seed_epoch_index(tmp_path):
    folder = PairedFolder(write_folder(tmp_path, 3))
    a, b = _mixture(folder), _mixture(folder)
    assert len(a) == 8
    a.set_epoch(1)
    b.set_epoch(1)
    for i in range(len(a)):
        image, mask = a[i]
        assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
        assert mask.shape == (1, 32, 32) and mask.dtype == torch.float32
        other_image, other_mask = b[i]
        assert torch.equal(image, other_image) and torch.equal(mask, other_mask)
    # Order of access does not matter either.
    assert torch.equal(a[5][0], a[5][0])
    first_epoch = [a[i][0] for i in range(len(a))]
    a.set_epoch(2)
    assert not all(torch.equal(x, a[i][0]) for i, x in enumerate(first_epoch))
    assert any(not torch.equal(first_epoch[0], x) for x in first_epoch[1:])
    other_seed = _mixture(folder, seed=1)
    other_seed.set_epoch(1)
    assert not all(torch.equal(x, other_seed[i][0]) for i, x in enumerate(first_epoch))


def test_train_mixture_validates_weights(tmp_path):
    folder = PairedFolder(write_folder(tmp_path, 1))
    with pytest.raises(ValueError, match="one weight per"):
        TrainMixture([folder], [1.0, 2.0], 4, train_transform(32))
    with pytest.raises(ValueError, match="not all 0"):
        TrainMixture([folder], [0.0], 4, train_transform(32))


def test_jpeg_images_decode(tmp_path):
    # JPEG pairs are read as RGB even when saved from greyscale.
    write_pair(tmp_path, "g")
    buf = io.BytesIO()
    Image.fromarray(person(32, 48)[0][..., 0]).save(buf, "JPEG")
    (tmp_path / "images" / "g.png").unlink()
    (tmp_path / "images" / "g.jpg").write_bytes(buf.getvalue())
    image, _ = PairedFolder(tmp_path)[0]
    assert image.shape == (32, 48, 3)
