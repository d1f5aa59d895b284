"""Edge-aware upsampling, mask post-processing, matting, foreground estimation and compositing, on numbers."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from personseg.inference import compose, refine
from synthetic import person


def _disc_alpha(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.float32)


def test_guided_upsampling_beats_plain_resize_at_a_sharp_edge() -> None:
    img, mask = person(960, 1280, radius=300, seed=5)
    truth = mask.astype(np.float32)
    low = cv2.resize(truth, (64, 48), interpolation=cv2.INTER_AREA)  # what a 64 px network could see at best
    guided = refine.guided_upsample(low, img)
    plain = np.clip(cv2.resize(low, (1280, 960), interpolation=cv2.INTER_LINEAR), 0, 1)
    kernel = np.ones((21, 21), np.uint8)
    band = cv2.dilate(mask.astype(np.uint8), kernel) != cv2.erode(mask.astype(np.uint8), kernel)
    err_guided = np.abs(guided - truth)[band].mean()
    err_plain = np.abs(plain - truth)[band].mean()
    assert err_guided < 0.5 * err_plain, (err_guided, err_plain)
    assert np.mean((guided >= 0.5) == mask) > np.mean((plain >= 0.5) == mask)


def test_guided_upsample_shapes_and_downscale() -> None:
    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    low = np.random.default_rng(1).random((20, 30)).astype(np.float32)
    out = refine.guided_upsample(low, img)
    assert out.shape == (37, 53) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    small = refine.guided_upsample(low, img[:10, :15])  # smaller than the mask: an area resize
    assert small.shape == (10, 15)
    flat = refine.guided_upsample(np.full((8, 8), 0.7, np.float32), img)
    np.testing.assert_allclose(flat, 0.7, atol=1e-3)  # a constant mask stays constant


def test_tighten_and_binarize() -> None:
    a = np.array([0.0, 0.05, 0.1, 0.5, 0.9, 0.95, 1.0], np.float32)
    np.testing.assert_allclose(refine.tighten(a, 0.1), [0, 0, 0, 0.5, 1, 1, 1], atol=1e-6)
    assert refine.tighten(a, 0.0) is a
    np.testing.assert_array_equal(refine.binarize(a, 0.5), [0, 0, 0, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="cutoff"):
        refine.tighten(a, 0.5)


def test_keep_largest_keeps_the_k_biggest_people_with_their_soft_edges() -> None:
    alpha = _disc_alpha(200, 300, 100, 80, 50) + _disc_alpha(200, 300, 100, 220, 30) + _disc_alpha(200, 300, 20, 280, 8)
    alpha = np.clip(cv2.GaussianBlur(alpha, (0, 0), 1.5), 0, 1)
    one = refine.keep_largest(alpha, 1)
    assert one[100, 80] == pytest.approx(alpha[100, 80]) and one[100, 220] == 0 and one[20, 280] == 0
    edge = (alpha > 0.05) & (alpha < 0.95) & (_disc_alpha(200, 300, 100, 80, 55) > 0)
    np.testing.assert_allclose(one[edge], alpha[edge])  # the kept person's anti-aliased border survives
    two = refine.keep_largest(alpha, 2)
    assert two[100, 220] > 0.99 and two[20, 280] == 0
    assert refine.keep_largest(alpha, 3) is alpha
    with pytest.raises(ValueError):
        refine.keep_largest(alpha, 0)


def test_fill_holes_fills_small_holes_only() -> None:
    alpha = _disc_alpha(200, 200, 100, 100, 80)
    alpha[95:100, 95:100] = 0  # 25 px hole
    alpha[40:70, 60:120] = 0  # 1800 px hole (4.5% of the image)
    alpha[0:10, 0:10] = 0  # background touching the border is never a hole
    out = refine.fill_holes(alpha, max_area=0.01)
    assert out[97, 97] == 1.0 and out[50, 80] == 0.0 and out[5, 5] == 0.0
    assert refine.fill_holes(alpha, max_area=0.05)[50, 80] == 1.0
    assert (refine.fill_holes(alpha, 0.01) >= alpha).all()


def test_feather_softens_only_the_edge() -> None:
    alpha = _disc_alpha(100, 100, 50, 50, 30)
    out = refine.feather(alpha, 3)
    assert out[50, 50] == pytest.approx(1.0) and out[2, 2] == pytest.approx(0.0)
    assert 0.3 < out[50, 80] < 0.7  # on the edge
    assert refine.feather(alpha, 0) is alpha


def test_trimap_marks_a_band_around_the_edge() -> None:
    alpha = _disc_alpha(100, 100, 50, 50, 30)
    tri = refine.trimap(alpha, band=4)
    assert tri[50, 50] == 1 and tri[0, 0] == 0 and tri[50, 80] == 0.5 and tri[50, 75] == 1
    assert set(np.unique(tri)) == {0.0, 0.5, 1.0}


def test_matting_without_pymatting_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pymatting", None)
    img, mask = person(40, 40)
    with pytest.raises(ImportError, match=r"personseg\[matting\]"):
        refine.matte(img, mask.astype(np.float32))
    with pytest.raises(ImportError, match="pymatting"):
        refine.estimate_foreground(img, mask.astype(np.float32), "ml")


@pytest.mark.slow
def test_matting_recovers_a_soft_edge() -> None:
    pytest.importorskip("pymatting")
    img, mask = person(80, 80, radius=25, seed=2)
    rough = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 3)  # a blurry network mask
    matted = refine.matte(img, rough, band=4)
    truth = mask.astype(np.float32)
    assert np.abs(matted - truth).mean() < np.abs(rough - truth).mean()
    fg = refine.estimate_foreground(img, matted, "ml")
    assert fg.shape == img.shape and fg.dtype == np.uint8


@pytest.mark.parametrize("size", [120, 1800])  # 1800: above work_side, estimates sampled from a smaller copy
def test_blur_fusion_removes_the_old_background_from_soft_pixels(size) -> None:
    h, w, f = size, size, size / 120
    alpha = np.clip(cv2.GaussianBlur(_disc_alpha(h, w, 60 * f, 60 * f, 35 * f), (0, 0), 3), 0, 1)
    fg_color, bg_color = np.array([200, 40, 40], np.float32), np.array([20, 200, 20], np.float32)
    image = (alpha[..., None] * fg_color + (1 - alpha[..., None]) * bg_color + 0.5).astype(np.uint8)
    fg = refine.estimate_foreground(image, alpha, "blur")
    soft = (alpha > 0.1) & (alpha < 0.9)
    err_raw = np.abs(image[soft].astype(np.float32) - fg_color).mean()
    err_est = np.abs(fg[soft].astype(np.float32) - fg_color).mean()
    assert err_est < 0.25 * err_raw, (err_est, err_raw)
    np.testing.assert_array_equal(fg[alpha >= 1], image[alpha >= 1])  # opaque pixels untouched
    assert refine.estimate_foreground(image, alpha, "none") is image
    with pytest.raises(ValueError, match="foreground"):
        refine.estimate_foreground(image, alpha, "magic")


# --- compose --------------------------------------------------------------------------------------------


def test_cutout_mask_and_over() -> None:
    rgb = np.full((4, 5, 3), 100, np.uint8)
    alpha = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    cut = compose.cutout(rgb, alpha)
    assert cut.shape == (4, 5, 4) and cut[0, 0, 3] == 0 and cut[-1, -1, 3] == 255
    np.testing.assert_array_equal(compose.alpha_to_uint8(alpha), cut[..., 3])
    assert tuple(cut[0, 0, :3]) == (0, 0, 0) and tuple(cut[0, 1, :3]) == (100, 100, 100)  # hidden colour dropped
    on_white = compose.over(rgb, alpha, compose.color_background(4, 5, (255, 255, 255)))
    assert on_white.shape == (4, 5, 3) and on_white[0, 0, 0] == 255 and on_white[-1, -1, 0] == 100
    half = compose.over(rgb, alpha, compose.color_background(4, 5, (0, 0, 255, 128)))
    assert half.shape == (4, 5, 4) and half[0, 0, 3] == 128 and half[-1, -1, 3] == 255
    assert tuple(half[0, 0, :3]) == (0, 0, 255)
    with pytest.raises(ValueError, match="colour"):
        compose.color_background(2, 2, (300, 0, 0))


def test_cover_fills_and_centre_crops() -> None:
    bg = np.zeros((100, 50, 3), np.uint8)
    bg[:, 20:30] = 255  # a white stripe in the middle
    out = compose.cover(bg, 60, 120)
    assert out.shape == (60, 120, 3)
    assert out[:, 60].min() == 255 and out[:, 0].max() == 0


def test_blurred_background_keeps_the_person_out_of_it() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    image[:] = (0, 0, 255)
    alpha = _disc_alpha(100, 100, 50, 50, 20)
    image[alpha > 0] = (255, 0, 0)
    out = compose.blurred_background(image, alpha, 8)
    assert out.shape == image.shape
    assert out[50, 75, 0] < 10  # right next to the person: still background blue, no red halo
    plain = cv2.GaussianBlur(image, (0, 0), 8)
    assert plain[50, 75, 0] > 50


def test_blurred_background_of_a_size_the_factor_does_not_divide() -> None:
    """Sigma 15 blurs at a quarter of the size; 101 x 203 leaves a row and three columns out of the small copy,
    and the result still covers the whole frame and matches a full-size blur of a smooth scene."""
    yy, xx = np.mgrid[:101, :203]
    image = np.dstack([xx * 255 // 202, yy * 255 // 100, np.full_like(xx, 128)]).astype(np.uint8)
    alpha = np.zeros((101, 203), np.float32)
    out = compose.blurred_background(image, alpha, 15)
    assert out.shape == image.shape
    full = cv2.GaussianBlur(image, (0, 0), 15, borderType=cv2.BORDER_REFLECT)
    assert np.abs(out.astype(int) - full.astype(int))[10:-10, 10:-10].max() <= 6


def test_guided_upsample_is_the_same_in_one_band_and_many_and_after_other_sizes() -> None:
    """The whole-frame path, the band-by-band path and a call after one of another size (the kept work arrays
    are re-made) agree; the work arrays are per thread, so two threads get the same answers."""
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (90, 160, 3), np.uint8), (0, 0), 2)
    low = cv2.GaussianBlur(rng.random((24, 32)).astype(np.float32), (0, 0), 2)
    whole = refine.guided_upsample(low, image, radius=2)
    np.testing.assert_allclose(refine.guided_upsample(low, image, radius=2, chunk_rows=16), whole, atol=1e-5)
    refine.guided_upsample(low, image[:50, :70], radius=2)
    np.testing.assert_array_equal(refine.guided_upsample(low, image, radius=2), whole)
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: refine.guided_upsample(low, image, radius=2), range(4)))
    for out in both:
        np.testing.assert_array_equal(out, whole)


def test_checkerboard_and_comparison_sizes() -> None:
    board = compose.checkerboard(40, 80, square=10)
    assert board.shape == (40, 80, 3) and board[0, 0, 0] != board[0, 10, 0]
    img = np.zeros((2000, 1000, 3), np.uint8)
    alpha = np.ones((2000, 1000), np.float32)
    strip = compose.comparison(img, alpha, compose.cutout(img, alpha))
    assert strip.shape == (1024, 3 * 512, 3)
    small = compose.comparison(img[:100, :60], alpha[:100, :60], compose.cutout(img[:100, :60], alpha[:100, :60]))
    assert small.shape == (100, 180, 3) and small[0, 60, 0] == 255  # the mask panel


def test_person_box_with_margin() -> None:
    alpha = np.zeros((100, 200), np.float32)
    alpha[20:60, 50:150] = 1
    assert compose.person_box(alpha, margin=0) == (20, 60, 50, 150)
    assert compose.person_box(alpha, margin=0.1) == (16, 64, 40, 160)
    assert compose.person_box(alpha, margin=5) == (0, 100, 0, 200)
    assert compose.person_box(np.zeros((5, 5), np.float32)) is None


def test_the_closed_form_3x3_solve_matches_numpy():
    from personseg.inference.refine import _solve_symmetric3

    rng = np.random.default_rng(0)
    m = rng.normal(size=(20, 30, 3, 3))
    spd = m @ np.swapaxes(m, -1, -2) + 1e-4 * np.eye(3)  # covariances + eps, as the guided filter has them
    spd[0, 0] = 1e-4 * np.eye(3) + 1e-3  # a flat, grey window: nearly singular but for eps
    v = rng.normal(size=(20, 30, 3))
    expected = np.linalg.solve(spd, v[..., None])[..., 0]
    upper = {(i, j): spd[..., i, j] for i in range(3) for j in range(i, 3)}
    np.testing.assert_allclose(_solve_symmetric3(upper, v), expected, rtol=1e-6, atol=1e-6)


def test_the_metadata_sets_the_guided_filters_radius_for_photos_and_video():
    """``guided_radius``: the radius the probability is brought to full size with, in the photo path and in the
    video path alike (session 12: 8 for the default at 384, 6 for the fast model at 192, instead of 1/64 of the
    input's side: boundary IoU +0.005 and +0.010 on the real-scene macro average)."""
    from personseg.inference.options import RemoveOptions
    from personseg.inference.remove import segment
    from personseg.video.pipeline import FrameProcessor, VideoOptions
    from test_inference_zoom import META
    from test_video_second_look import BlurryRedIsPerson, standing_figure

    rgb = standing_figure()  # a network unsure at the edges: there the radius shows
    plain, wide = BlurryRedIsPerson(META), BlurryRedIsPerson({**META, "guided_radius": 5})
    assert plain.guided_radius is None and wide.guided_radius == 5
    low = plain.predict_lowres([rgb])[0]
    np.testing.assert_array_equal(wide.predict(rgb), refine.guided_upsample(low, rgb, radius=5))
    np.testing.assert_array_equal(plain.predict(rgb), refine.guided_upsample(low, rgb))  # 1 px at 64: 1/64 of the side
    assert np.abs(wide.predict(rgb) - plain.predict(rgb)).max() > 0.05
    same = VideoOptions(remove=RemoveOptions())  # the photo's post-processing (a video's edge is tighter)
    frames = {m.guided_radius: FrameProcessor(m, same, kind="mask")(rgb) for m in (plain, wide)}
    photo = compose.alpha_to_uint8(segment(rgb, wide, RemoveOptions()).alpha)  # the photo path, post-processed
    assert np.abs(frames[5].astype(int) - photo).max() <= 1
    assert np.abs(frames[5].astype(int) - frames[None]).max() > 10


@pytest.mark.parametrize("radius", [0, 65, 2.5, True, "4"])
def test_a_bad_guided_radius_is_a_one_line_error(radius):
    from test_inference_zoom import META, RedIsPerson

    with pytest.raises(ValueError, match=r"red-is-person: metadata guided_radius must be a whole number .* 1\.\.64"):
        RedIsPerson({**META, "guided_radius": radius})
