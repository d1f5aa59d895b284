"""The second look in video (personseg.video.second_look): a steady crop box, its own stabiliser, and the same
first frame as a photo."""

from __future__ import annotations

import cv2
import numpy as np

from personseg.inference import compose
from personseg.inference.options import RemoveOptions
from personseg.inference.remove import segment
from personseg.inference.zoom import ZoomSettings
from personseg.video.pipeline import FrameProcessor, VideoOptions
from personseg.video.second_look import FILE_CROP_SIZE, FILE_CROP_WEIGHT, SecondLook
from test_inference_zoom import META, RedIsPerson, landscape_with_a_standing_person

ZOOM_META = {**META, "zoom": {"min_gain": 1.15, "margin": 0.1}}


def low_with_person(top: int, bottom: int, left: int, right: int) -> np.ndarray:
    low = np.zeros((30, 100), np.float32)  # a 120 x 400 frame seen at 30 x 100
    low[top:bottom, left:right] = 1.0
    return low


def scale(h: int, w: int) -> tuple[float, float]:
    return (min(64 / h, 64 / w),) * 2


def test_the_box_keeps_its_size_and_follows_the_person_half_way():
    look = SecondLook(ZoomSettings(), stabilizer=None, slack=0.0)
    first, fresh = look.box(low_with_person(5, 25, 40, 50), (120, 400), scale, 0.5)
    assert fresh and first == (12, 108, 156, 204)
    # An arm comes down (the person's box 164-204): the same box size, moved half way from centre 180 to 184.
    moved, fresh = look.box(low_with_person(5, 25, 42, 50), (120, 400), scale, 0.5)
    assert not fresh and moved == (12, 108, 158, 206)
    # A step right as wide as the box: it goes all the way, the person stays inside.
    stepped = (12, 108, 172, 220)
    assert look.box(low_with_person(5, 25, 44, 54), (120, 400), scale, 0.5) == (stepped, False)
    # Lost by the whole frame for a moment: the last box is still looked at, for `patience` frames.
    for _ in range(5):
        assert look.box(np.zeros((30, 100), np.float32), (120, 400), scale, 0.5) == (stepped, False)
    assert look.box(np.zeros((30, 100), np.float32), (120, 400), scale, 0.5) == (None, False)


def test_a_new_box_has_room_for_the_people_to_move():
    look = SecondLook(ZoomSettings(), stabilizer=None)  # slack 0.1: grown by 10% of the people's box
    assert look.box(low_with_person(5, 25, 40, 50), (120, 400), scale, 0.5) == ((2, 118, 151, 209), True)
    # A step and a raised arm later the box is the same size: the crop's stabiliser keeps its past.
    box, fresh = look.box(low_with_person(4, 25, 41, 51), (120, 400), scale, 0.5)
    assert not fresh and (box[1] - box[0], box[3] - box[2]) == (116, 58)
    # "Shrunk to under half" is measured against the people's box, not the grown one (whose area is 1.4x).
    assert not look.box(low_with_person(8, 24, 42, 49), (120, 400), scale, 0.5)[1]


def test_a_new_box_when_the_people_outgrow_it_or_shrink_to_under_half():
    look = SecondLook(ZoomSettings(), stabilizer=None, slack=0.0)
    look.box(low_with_person(5, 25, 40, 50), (120, 400), scale, 0.5)
    wider, fresh = look.box(low_with_person(5, 25, 30, 55), (120, 400), scale, 0.5)  # someone walked in
    assert fresh and wider[3] - wider[2] > 48
    smaller, fresh = look.box(low_with_person(10, 20, 40, 45), (120, 400), scale, 0.5)
    assert fresh and (smaller[1] - smaller[0]) * (smaller[3] - smaller[2]) < 0.5 * 96 * 112
    look.reset()  # a scene cut
    assert look.box(low_with_person(10, 20, 40, 45), (120, 400), scale, 0.5)[1]


def test_the_box_stays_inside_the_frame_and_around_the_person():
    look = SecondLook(ZoomSettings(), stabilizer=None, slack=0.0)
    look.box(low_with_person(5, 25, 90, 98), (120, 400), scale, 0.5)
    for right in (99, 100, 100):  # running into the frame's edge
        box, _ = look.box(low_with_person(5, 25, right - 8, right), (120, 400), scale, 0.5)
        assert box[3] <= 400 and box[2] <= (right - 8) * 4 and box[3] >= right * 4 - 1


def clip(frames: int = 6, step: int = 2) -> list[np.ndarray]:
    rgb, _ = landscape_with_a_standing_person()
    return [np.roll(rgb, i * step, axis=1) for i in range(frames)]


def test_video_frames_get_the_second_look_on_a_steady_crop():
    model = RedIsPerson(ZOOM_META)
    processor = FrameProcessor(model, VideoOptions(), kind="mask")
    boxes = []
    for rgb in clip():
        model.calls.clear()
        second = processor.predict([rgb])[0][3]
        assert len(model.calls) == 2 and second is not None
        boxes.append(second[0])
    sizes = {(b[1] - b[0], b[3] - b[2]) for b in boxes}
    assert len(sizes) == 1  # one box for the shot: the crop's stabiliser has one shape to follow
    assert 0 < boxes[-1][2] - boxes[0][2] <= 10  # it follows the person (moved 10 px), never ahead of her


def test_video_crops_go_through_at_their_own_shape_when_the_model_sets_a_crop_size():
    model = RedIsPerson({**META, "zoom": {"min_gain": 1.15, "margin": 0.1, "crop_size": 64}})
    processor = FrameProcessor(model, VideoOptions(), kind="mask")
    for rgb in clip():
        model.calls.clear()
        assert processor.predict([rgb])[0][3] is not None
        (h0, w0), (h, w) = (c.shape[-2:] for c in model.calls)
        # The frame in the 64 x 64 letterbox, the tall crop around the figure fitted within 64 x 64 pixels.
        assert (h0, w0) == (64, 64) and h > w and h % 32 == 0 and w % 32 == 0 and h * w <= 64 * 64
    assert processor.crop_model.meta["resize"] == "fit" and processor.crop_model.input_size == (64, 64)


class BlurryRedIsPerson(RedIsPerson):
    """Red is person, but as unsure at the edges as a real network: its output blurred over 5 x 5 of its pixels,
    so a person seen larger (the crop) comes out more certain, and the guided filter cannot make up for it."""

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([cv2.blur(p[0], (5, 5))[None] for p in super()._forward(batch)])


def standing_figure() -> np.ndarray:
    rgb = np.full((120, 400, 3), 128, np.uint8)
    rgb[20:100, 185:215] = (255, 0, 0)
    return rgb


def test_the_second_look_makes_video_masks_surer_and_is_skipped_with_no_zoom():
    model = BlurryRedIsPerson(ZOOM_META)
    zoomed = FrameProcessor(model, VideoOptions(), kind="mask")
    plain = FrameProcessor(model, VideoOptions(remove=RemoveOptions(zoom=False)), kind="mask")
    for _ in range(3):
        model.calls.clear()
        without = plain(standing_figure())
        assert len(model.calls) == 1
        mask = zoomed(standing_figure())
        assert len(model.calls) == 3
    inside = (slice(30, 90), slice(188, 212))
    assert mask[inside].mean() > without[inside].mean() + 20  # 224 vs 186 of 255
    np.testing.assert_array_equal(mask[:, :150], without[:, :150])  # outside the box: the first pass alone


def test_a_video_file_smoothed_by_the_window_looks_closer_with_every_model_and_live_does_not():
    for meta in (ZOOM_META, META):  # a model with a second look of its own, and one without (as personseg-fast)
        model = BlurryRedIsPerson(meta)
        soft = VideoOptions(remove=RemoveOptions())  # a photo's soft edge: the video's tighter one saturates here
        live = FrameProcessor(model, soft, kind="mask")
        unwindowed = FrameProcessor(model, VideoOptions(window=0), kind="mask", file=True)
        unzoomed = FrameProcessor(model, VideoOptions(remove=RemoveOptions(zoom=False)), kind="mask", file=True)
        file = FrameProcessor(model, soft, kind="mask", file=True)
        for plain in (live, unwindowed):
            assert (plain.second_look is None) == (meta is META)
            assert plain.second_look is None or plain.second_look.settings == ZoomSettings(min_gain=1.15, margin=0.1)
        assert unzoomed.second_look is None
        settings = file.second_look.settings
        assert (settings.crop_size, settings.weight, settings.margin) == (FILE_CROP_SIZE, FILE_CROP_WEIGHT, 0.1)
        assert file.crop_model.input_size == (FILE_CROP_SIZE, FILE_CROP_SIZE)
        model.calls.clear()
        assert file.push(None, standing_figure(), *file.predict([standing_figure()])[0]) == []  # the window waits
        ((_, mask),) = file.flush()
        (h0, w0), (h, w) = (c.shape[-2:] for c in model.calls)
        assert (h0, w0) == (64, 64) and h > w and h * w <= FILE_CROP_SIZE**2 and h > 64  # the figure seen larger
        truth = np.zeros((120, 400))
        truth[20:100, 185:215] = 255
        seen_live = live(standing_figure())
        # Mean error against the figure: 1.2 against 2.5 (its own look) and 4.1 (none) of 255.
        assert np.abs(mask - truth).mean() < 0.6 * np.abs(seen_live - truth).mean()
        np.testing.assert_array_equal(mask[:, :150], seen_live[:, :150])  # outside the box: the first pass alone


def test_a_model_in_two_stages_runs_each_video_frame_once_whole_at_its_input_size():
    two = {"min_gain": 1.0, "margin": 0.1, "first_size": 32, "weight": 1.0, "square": True, "threshold": 0.2}
    model = BlurryRedIsPerson({**META, "zoom": two})
    processor = FrameProcessor(model, VideoOptions(), kind="mask")
    assert processor.second_look is None
    mask = processor(standing_figure())
    assert [c.shape[-2:] for c in model.calls] == [(64, 64)]
    plain = FrameProcessor(BlurryRedIsPerson(META), VideoOptions(), kind="mask")(standing_figure())
    np.testing.assert_array_equal(mask, plain)


def test_the_first_frame_is_close_to_the_photo_paths_mask():
    model = BlurryRedIsPerson(ZOOM_META)
    same = VideoOptions(remove=RemoveOptions())  # the photo's post-processing (a video's edge is tighter)
    video_first = FrameProcessor(model, same, kind="mask")(standing_figure())
    photo = compose.alpha_to_uint8(segment(standing_figure(), model, RemoveOptions()).alpha)
    no_zoom = compose.alpha_to_uint8(segment(standing_figure(), model, RemoveOptions(zoom=False)).alpha)
    # The video's box is the photo's grown by 10% (room to move), so the crop is seen a little smaller.
    assert np.abs(video_first.astype(int) - photo).mean() < 0.5 < np.abs(no_zoom.astype(int) - photo).mean()


def test_with_internal_size_the_box_is_scaled_back_to_the_full_frame():
    model = BlurryRedIsPerson(ZOOM_META)
    full = FrameProcessor(model, VideoOptions(), kind="mask")(standing_figure())
    model.calls.clear()
    halved = FrameProcessor(model, VideoOptions(internal_size=200), kind="mask")(standing_figure())
    assert len(model.calls) == 2 and halved.shape == full.shape == (120, 400)
    inside = (slice(30, 90), slice(188, 212))
    assert abs(float(halved[inside].mean()) - float(full[inside].mean())) < 15
    assert halved[:, :150].max() == full[:, :150].max() == 0
