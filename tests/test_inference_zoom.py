"""The second look at the people (personseg.inference.zoom): where the crop is, when it runs, what it adds."""

from __future__ import annotations

import re

import numpy as np
import pytest

from personseg.inference.api import Segmenter
from personseg.inference.zoom import ZoomSettings, merge, zoom_box, zoom_settings

META = {"input_size": [64, 64], "mean": [0.5] * 3, "std": [0.5] * 3, "resize": "letterbox", "threshold": 0.5}


class RedIsPerson(Segmenter):
    """A network that calls a pixel person where it is red (at its own input resolution), and records its calls."""

    def __init__(self, meta: dict) -> None:
        super().__init__(meta, "red-is-person")
        self.calls: list[np.ndarray] = []

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.copy())
        red, green = batch[:, 0:1], batch[:, 1:2]  # normalized to [-1, 1]
        return np.clip((red - green) / 2, 0.0, 1.0).astype(np.float32)


def landscape_with_a_standing_person(h: int = 120, w: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A wide grey photo with a tall red figure (rows 20-100, columns 190-210) and, inside it, a 1 px grey line
    the network can only see when the figure reaches it larger than the whole photo does."""
    rgb = np.full((h, w, 3), 128, np.uint8)
    person = np.zeros((h, w), bool)
    person[20:100, 190:210] = True
    rgb[person] = (255, 0, 0)
    rgb[20:100, 200] = 128  # a gap between two legs, 1 px wide
    return rgb, person


def letterbox_scale(size: int = 64):
    return lambda h, w: (min(size / h, size / w),) * 2


def test_the_box_is_the_people_grown_by_the_margin_in_photo_pixels():
    low = np.zeros((30, 100), np.float32)  # a 120 x 400 photo seen at 30 x 100
    low[5:25, 47:53] = 0.9
    box = zoom_box(low, (120, 400), letterbox_scale(), 0.5, ZoomSettings(min_gain=1.15, margin=0.1))
    # rows 5-25 and columns 47-53 of the low-res map, grown by 10% (2 rows, 1 column), times 4.
    assert box == (12, 108, 184, 216)


def test_no_box_when_nobody_is_found_or_the_crop_would_not_be_larger():
    settings = ZoomSettings()
    assert zoom_box(np.zeros((30, 100), np.float32), (120, 400), letterbox_scale(), 0.5, settings) is None
    everywhere = np.zeros((30, 100), np.float32)
    everywhere[2:28, 5:95] = 1.0  # people across the photo: the crop is seen at about the same scale
    assert zoom_box(everywhere, (120, 400), letterbox_scale(), 0.5, settings) is None
    # A person as wide as the photo but half its height: a landscape crop of a landscape photo gains nothing.
    wide = np.zeros((30, 100), np.float32)
    wide[10:20, 0:100] = 1.0
    assert zoom_box(wide, (120, 400), letterbox_scale(), 0.5, settings) is None
    # A tall person in a square photo neither: the crop is as tall as the photo. Only both sides shorter gain.
    tall = np.zeros((30, 30), np.float32)
    tall[0:30, 12:18] = 1.0
    assert zoom_box(tall, (120, 120), letterbox_scale(), 0.5, settings) is None
    tall[:8], tall[-8:] = 0.0, 0.0
    assert zoom_box(tall, (120, 120), letterbox_scale(), 0.5, settings) == (
        28,
        92,
        44,
        76,
    )  # rows 8-22, columns 12-18, each grown by 1, times 4


def test_merge_averages_inside_the_box_and_fades_out_across_its_margin():
    first = np.zeros((100, 100), np.float32)
    second = np.ones((60, 50), np.float32)
    out = merge(first, second, (20, 80, 30, 80), margin=0.25)  # the margin band: 60 * 0.25 / 1.5 = 10 rows
    assert (out[40:60, 45:65] == 0.5).all()  # the mean of both passes inside
    assert out[:20].max() == 0 and out[:, :30].max() == 0 and first.max() == 0  # outside and the input untouched
    # No hard rectangle: at each edge of the box the crop's weight is near 0 and grows across the band.
    assert out[20, 55] < 0.05 and out[79, 55] < 0.05 and out[50, 30] < 0.05 and out[50, 79] < 0.05
    assert np.all(np.diff(out[20:31, 55]) > 0) and out[30, 55] == 0.5
    # A side on the photo's own edge has nothing to blend into: full weight up to it.
    at_top = merge(first, second, (0, 60, 30, 80), margin=0.25)
    assert at_top[0, 55] == 0.5 and at_top[59, 55] < 0.05


def test_a_model_asking_for_zoom_runs_the_crop_and_sees_what_the_whole_photo_hid():
    rgb, person = landscape_with_a_standing_person()
    plain = RedIsPerson(META)
    zoomed = RedIsPerson({**META, "zoom": {"min_gain": 1.15, "margin": 0.1}})
    first = plain.predict(rgb, upsample="bilinear")
    both = zoomed.predict(rgb, upsample="bilinear")
    assert len(plain.calls) == 1 and len(zoomed.calls) == 2
    # The second call saw the crop: a tall picture letterboxed into the square input, so its rows are full.
    crop_input = zoomed.calls[1][0]
    assert (crop_input[0] > crop_input[1]).any(axis=1).mean() > 0.8  # red in most rows (the whole photo: ~1/3)
    # Outside the crop both agree; the gap between the legs is seen only from up close.
    np.testing.assert_array_equal(both[:, :150], first[:, :150])
    assert both[40:80, 200].mean() < first[40:80, 200].mean() - 0.1
    assert both[person].mean() >= first[person].mean() - 0.05
    # Turned off per call, the zoomed model gives exactly the plain one's answer with one network call.
    zoomed.calls.clear()
    np.testing.assert_array_equal(zoomed.predict(rgb, upsample="bilinear", zoom=False), first)
    assert len(zoomed.calls) == 1
    # And asked for on a model without it in its metadata, the defaults run.
    np.testing.assert_allclose(plain.predict(rgb, upsample="bilinear", zoom=True), both, atol=1e-6)


def test_a_batch_sends_every_crop_through_one_network_call_and_skips_photos_without_people():
    rgb, _ = landscape_with_a_standing_person()
    empty = np.full_like(rgb, 128)
    model = RedIsPerson({**META, "zoom": {"min_gain": 1.15, "margin": 0.1}})
    out = model.predict_batch([rgb, empty, rgb], upsample="bilinear")
    assert [c.shape[0] for c in model.calls] == [3, 2]
    np.testing.assert_array_equal(out[0], out[2])
    assert out[1].max() == 0.0


@pytest.mark.parametrize(
    "zoom, problem",
    [
        ("yes", "must be an object"),
        ({"min_gain": 1.2, "size": 3}, "must be an object"),
        ({"min_gain": 0.5}, "min_gain in [1, 100]"),
        ({"margin": 2}, "margin in [0, 1]"),
        ({"min_gain": float("nan")}, "min_gain in [1, 100]"),
        ({"min_gain": True}, "must be numbers"),
        ({"weight": 0}, "weight in (0, 1]"),
        ({"first_size": 8}, "first_size must be a whole number of pixels in 16..4096"),
        ({"first_size": 128.0}, "first_size must be a whole number"),
        ({"square": 1}, "square must be true or false"),
        ({"threshold": 1.0}, "threshold must be a number in (0, 1)"),
    ],
)
def test_bad_zoom_metadata_is_a_one_line_error_naming_the_file(zoom, problem):
    with pytest.raises(ValueError, match=re.escape(problem)) as err:
        zoom_settings({"zoom": zoom}, "model.onnx")
    assert str(err.value).startswith("model.onnx: ") and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="^red-is-person: metadata zoom"):
        RedIsPerson({**META, "zoom": zoom})


TWO_STAGES = {"min_gain": 1.0, "margin": 0.1, "first_size": 32, "weight": 1.0, "square": True, "threshold": 0.2}


def test_the_two_stages_settings_are_read_whole():
    assert zoom_settings({"zoom": TWO_STAGES}, "m.onnx") == ZoomSettings(
        min_gain=1.0, margin=0.1, first_size=32, weight=1.0, square=True, threshold=0.2
    )


def test_a_square_box_is_grown_about_its_centre_and_kept_inside_the_photo():
    low = np.zeros((30, 100), np.float32)  # a 120 x 400 photo seen at 30 x 100
    low[5:25, 48:52] = 1.0  # photo rows 20-100, columns 192-208
    square = ZoomSettings(min_gain=1.0, margin=0.0, square=True)
    assert zoom_box(low, (120, 400), letterbox_scale(), 0.5, square) == (20, 100, 160, 240)
    low[:] = 0
    low[5:25, 0:4] = 1.0  # at the photo's left edge: the square is moved in, not cut
    assert zoom_box(low, (120, 400), letterbox_scale(), 0.5, square) == (20, 100, 0, 80)
    low[:] = 0
    low[0:30, 10:90] = 1.0  # wider than the photo is tall: as tall as the photo
    assert zoom_box(low, (120, 400), letterbox_scale(), 0.5, square) == (0, 120, 40, 360)


def test_the_settings_threshold_decides_what_counts_as_person_for_the_box():
    low = np.zeros((30, 100), np.float32)
    low[5:25, 48:52] = 0.3  # faint: found at 0.2, not at the model's 0.5
    assert zoom_box(low, (120, 400), letterbox_scale(), 0.5, ZoomSettings()) is None
    assert zoom_box(low, (120, 400), letterbox_scale(), 0.5, ZoomSettings(threshold=0.2)) == (12, 108, 192, 208)


def test_merge_with_weight_one_replaces_the_first_pass_inside_the_box():
    first = np.zeros((100, 100), np.float32)
    out = merge(first, np.ones((60, 50), np.float32), (20, 80, 30, 80), margin=0.25, weight=1.0)
    assert (out[40:60, 45:65] == 1.0).all() and out[:20].max() == 0
    assert out[20, 55] < 0.1 and np.all(np.diff(out[20:31, 55]) > 0)


def test_two_stages_find_the_people_small_then_look_at_them_at_the_input_size():
    rgb, person = landscape_with_a_standing_person()
    model = RedIsPerson({**META, "zoom": TWO_STAGES})
    out = model.predict(rgb, upsample="bilinear")
    # Two calls: the whole photo at first_size, then the square crop around the figure at the input size.
    assert [c.shape[-2:] for c in model.calls] == [(32, 32), (64, 64)]
    crop_input = model.calls[1][0]
    red_columns = (crop_input[0] > crop_input[1]).any(axis=0).sum()
    assert 10 <= red_columns <= 20  # 20 of the square's ~96 photo columns: undistorted, not the whole width
    # Outside the box the look-out pass is all there is; inside, the crop replaces it and sees the 1 px gap.
    lookout = RedIsPerson({**META, "input_size": [32, 32]}).predict(rgb, upsample="bilinear")
    np.testing.assert_array_equal(out[:, :100], lookout[:, :100])
    assert out[40:80, 200].mean() < lookout[40:80, 200].mean() - 0.1
    assert out[person].mean() > 0.8


def test_two_stages_look_at_the_whole_photo_at_the_input_size_when_nobody_is_found():
    empty = np.full((120, 400, 3), 128, np.uint8)
    empty[50:54, 10:14] = (255, 0, 0)  # too small for the look-out at 32 to count as a person; seen at 64
    model = RedIsPerson({**META, "zoom": TWO_STAGES})
    out = model.predict(empty, upsample="bilinear")
    assert [c.shape[-2:] for c in model.calls] == [(32, 32), (64, 64)]
    np.testing.assert_array_equal(out, RedIsPerson(META).predict(empty, upsample="bilinear"))
    assert out.max() > 0.2


def test_a_model_at_another_size_shares_its_network_and_scales_its_guided_radius():
    model = RedIsPerson({**META, "guided_radius": 6})
    small = model.at_size(32)
    assert small.input_size == (32, 32) and small.guided_radius == 3 and model.input_size == (64, 64)
    small.predict(np.zeros((40, 40, 3), np.uint8))
    assert model.calls and model.calls[0].shape[-2:] == (32, 32)  # the same network object ran it


def test_two_stages_with_a_shared_weight_average_both_passes_even_over_the_whole_photo():
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = 255
    rgb[:, ::2] = 128  # grey columns every other pixel: seen at 64, blurred to pink at 32
    model = RedIsPerson({**META, "zoom": {**TWO_STAGES, "weight": 0.5}})
    out = model.predict(rgb, upsample="bilinear")
    lookout = RedIsPerson({**META, "input_size": [32, 32]}).predict(rgb, upsample="bilinear")
    plain = RedIsPerson(META).predict(rgb, upsample="bilinear")
    assert np.abs(lookout - plain).max() > 0.3  # the two passes differ
    np.testing.assert_allclose(out, (lookout + plain) / 2, atol=1e-6)


def test_a_crop_size_sends_the_crop_through_at_its_own_shape_within_that_many_pixels():
    rgb, person = landscape_with_a_standing_person()
    model = RedIsPerson({**META, "zoom": {"min_gain": 1.15, "margin": 0.1, "crop_size": 64}})
    out = model.predict(rgb, upsample="bilinear")
    # The whole photo in the 64 x 64 letterbox, then the 96 x 26 crop (rows 12-108, columns 187-213: the figure
    # and its margin) fitted within 64 x 64 = 4096 pixels: 128 x 32 at scale 1.23, where the model's own 64 x 64
    # letterbox would show it at 0.67.
    assert [c.shape[-2:] for c in model.calls] == [(64, 64), (128, 32)]
    assert model.crop_view(model.zoom).input_scale(96, 26) == (118 / 96, 32 / 26)
    # The crop, seen larger than in the whole photo, shows the 1 px gap between the legs; the figure is kept.
    plain = RedIsPerson(META).predict(rgb, upsample="bilinear", zoom=False)
    assert out[40:80, 200].mean() < plain[40:80, 200].mean() - 0.1
    assert out[person].mean() > 0.8
    for bad in (16, 40.0, True):
        with pytest.raises(ValueError, match="metadata zoom crop_size must be a whole number of pixels in 32..4096"):
            zoom_settings({"zoom": {"crop_size": bad}}, "m.onnx")
