"""remove_background: the input's kind comes back, and every option changes the result as documented."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import personseg
from personseg.inference.remove import RemoveOptions, segment
from synthetic import iou, person, two_people


@pytest.fixture()
def photo():
    """A 90 x 120 photo with a 'person' (disc) and its true mask."""
    return person(90, 120, center=(45, 60), radius=30, seed=7)


def _png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    return img


def test_each_input_kind_returns_its_kind(onnx_model, photo, tmp_path) -> None:
    rgb, mask = photo
    path = tmp_path / "p.png"
    Image.fromarray(rgb).save(path)
    from_array = personseg.remove_background(rgb, onnx_model)
    assert isinstance(from_array, np.ndarray) and from_array.shape == (90, 120, 4) and from_array.dtype == np.uint8
    assert iou(from_array[..., 3] >= 128, mask) > 0.9
    from_pil = personseg.remove_background(Image.fromarray(rgb), onnx_model)
    assert isinstance(from_pil, Image.Image) and from_pil.mode == "RGBA" and from_pil.size == (120, 90)
    for source in (path, str(path), path.read_bytes()):
        out = personseg.remove_background(source, onnx_model)
        assert isinstance(out, bytes)
        decoded = _png(out)
        assert decoded.mode == "RGBA" and decoded.size == (120, 90)
        np.testing.assert_array_equal(np.asarray(decoded), from_array)
    np.testing.assert_array_equal(np.asarray(from_pil), from_array)


def test_only_mask_kinds(onnx_model, photo) -> None:
    rgb, mask = photo
    arr = personseg.remove_background(rgb, onnx_model, only_mask=True)
    assert arr.shape == (90, 120) and arr.dtype == np.uint8 and iou(arr >= 128, mask) > 0.9
    assert personseg.remove_background(Image.fromarray(rgb), onnx_model, only_mask=True).mode == "L"
    assert _png(personseg.remove_background(_encoded(rgb), onnx_model, only_mask=True)).mode == "L"


def _encoded(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_exif_rotated_input_gives_upright_output(onnx_model, tmp_path) -> None:
    rgb, _ = person(40, 80, seed=1)
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "r.jpg"
    img.save(path, exif=exif.tobytes())
    out = _png(personseg.remove_background(path, onnx_model))
    assert out.size == (40, 80)


def test_background_colour_image_and_blur(onnx_model, photo) -> None:
    rgb, mask = photo
    green = personseg.remove_background(rgb, onnx_model, bgcolor=(0, 255, 0))
    assert green.shape == (90, 120, 4) and (green[..., 3] == 255).all()
    assert tuple(green[2, 2, :3]) == (0, 255, 0)  # background pixels are the colour
    inside = mask & (np.hypot(*np.mgrid[:90, :120] - np.array([45, 60])[:, None, None]) < 20)
    np.testing.assert_array_equal(green[..., :3][inside], rgb[inside])  # the person is untouched
    see_through = personseg.remove_background(rgb, onnx_model, bgcolor=(0, 0, 255, 100))
    assert see_through[2, 2, 3] == 100 and see_through[45, 60, 3] == 255
    bg = np.zeros((10, 20, 3), np.uint8)
    bg[:] = (250, 0, 250)
    on_image = personseg.remove_background(rgb, onnx_model, bg_image=bg)
    assert tuple(on_image[2, 2, :3]) == (250, 0, 250) and on_image.shape == (90, 120, 4)
    blurred = personseg.remove_background(rgb, onnx_model, bg_blur=5)
    assert blurred.shape == (90, 120, 4)
    assert np.abs(blurred[..., :3][~mask].astype(int) - rgb[~mask]).mean() > 0  # background changed
    with pytest.raises(ValueError, match="give one background, not bgcolor and bg_blur"):
        personseg.remove_background(rgb, onnx_model, bgcolor=(0, 0, 0), bg_blur=3)


def test_hard_mask_threshold_and_soft_default(onnx_model, photo) -> None:
    rgb, _ = photo
    hard = personseg.remove_background(rgb, onnx_model, only_mask=True, soft=False)
    assert set(np.unique(hard)) <= {0, 255}
    raw = onnx_model.predict(rgb)
    strict = personseg.remove_background(rgb, onnx_model, only_mask=True, soft=False, threshold=0.9)
    np.testing.assert_array_equal(strict == 255, raw >= 0.9)
    soft = personseg.remove_background(rgb, onnx_model, only_mask=True, edge_cutoff=0.0)
    np.testing.assert_array_equal(soft, (np.clip(raw, 0, 1) * 255 + 0.5).astype(np.uint8))


def test_keep_largest_fill_holes_feather_on_a_real_prediction(onnx_model) -> None:
    rgb, _ = person(100, 200, center=(50, 60), radius=35, seed=3)
    small, small_mask = person(100, 200, center=(50, 160), radius=15, seed=3)
    rgb[small_mask] = small[small_mask]  # a second, smaller "person"
    both = personseg.remove_background(rgb, onnx_model, only_mask=True)
    assert both[50, 60] > 200 and both[50, 160] > 200
    one = personseg.remove_background(rgb, onnx_model, only_mask=True, keep_largest=1)
    assert one[50, 60] > 200 and one[50, 160] == 0
    holed = rgb.copy()
    holed[42:58, 52:68] = rgb[5, 5]  # a 16x16 hole of background colour (1.3% of the image) in the big person
    assert personseg.remove_background(holed, onnx_model, only_mask=True, soft=False)[50, 60] == 0
    assert personseg.remove_background(holed, onnx_model, only_mask=True, soft=False, fill_holes=0.005)[50, 60] == 0
    filled = personseg.remove_background(holed, onnx_model, only_mask=True, soft=False, fill_holes=0.02)
    assert filled[50, 60] == 255
    sharp = personseg.remove_background(rgb, onnx_model, only_mask=True, soft=False)
    feathered = personseg.remove_background(rgb, onnx_model, only_mask=True, soft=False, feather=3)
    edge = (sharp[50, :] == 255).argmax()  # first person pixel on the middle row
    assert 0 < feathered[50, edge] < 255 and 0 < feathered[50, edge - 1] < 255


def test_crop_to_person_with_margin(onnx_model) -> None:
    rgb, mask = person(120, 200, center=(60, 140), radius=30, seed=9)
    out = personseg.remove_background(rgb, onnx_model, crop=True, crop_margin=0.0)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    assert abs(out.shape[0] - rows.size) <= 4 and abs(out.shape[1] - cols.size) <= 4
    wide = personseg.remove_background(rgb, onnx_model, crop=True, crop_margin=0.2)
    assert wide.shape[0] > out.shape[0] + 15 and wide.shape[1] > out.shape[1] + 15
    nobody = np.full((50, 50, 3), 10, np.uint8)
    assert personseg.remove_background(nobody, onnx_model, crop=True).shape == (50, 50, 4)


def test_foreground_estimation_changes_only_soft_pixels(onnx_model, photo) -> None:
    rgb, _ = photo
    seg = segment(rgb, onnx_model, RemoveOptions(foreground="blur"))
    plain = segment(rgb, onnx_model, RemoveOptions(foreground="none"))
    opaque = seg.alpha >= 1.0
    np.testing.assert_array_equal(seg.cutout()[..., :3][opaque], rgb[opaque])
    visible = plain.cutout()[..., 3] > 0  # fully transparent pixels are black
    np.testing.assert_array_equal(plain.cutout()[..., :3][visible], rgb[visible])


def test_options_are_validated_with_their_names(onnx_model, photo) -> None:
    rgb, _ = photo
    with pytest.raises(TypeError, match="unknown option.*colour"):
        personseg.remove_background(rgb, onnx_model, colour=(1, 2, 3))
    for bad, match in [
        ({"threshold": 1.5}, "threshold"),
        ({"keep_largest": -1}, "keep_largest"),
        ({"fill_holes": 2.0}, "fill_holes"),
        ({"feather": -1}, "feather"),
        ({"foreground": "x"}, "foreground"),
        ({"matting": True, "soft": False}, "matting"),
        ({"edge_cutoff": 0.6}, "edge_cutoff"),
        ({"subject": "largest"}, "subject: 'largest' is not one of all, main"),
    ]:
        with pytest.raises(ValueError, match=match):
            RemoveOptions(**bad)


def test_rgba_and_grayscale_inputs(onnx_model, photo) -> None:
    rgb, mask = photo
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])  # fully transparent input: alpha ignored
    assert iou(personseg.remove_background(rgba, onnx_model, only_mask=True) >= 128, mask) > 0.9
    gray = personseg.remove_background(Image.fromarray(rgb).convert("L"), onnx_model)
    assert gray.mode == "RGBA" and gray.size == (120, 90)


def test_named_and_text_colours(onnx_model, photo) -> None:
    rgb, mask = photo
    red = personseg.remove_background(rgb, onnx_model, bgcolor="red")
    far = ~mask & (personseg.remove_background(rgb, onnx_model, only_mask=True) == 0)
    assert (red[far][:, :3] == (255, 0, 0)).all()
    for colour in ("#00ff00", "0,255,0", "rgb(0, 255, 0)", "lime", (0, 255, 0), np.array([0, 255, 0])):
        out = personseg.remove_background(rgb, onnx_model, bgcolor=colour)
        assert (out[far][:, :3] == (0, 255, 0)).all(), colour
    for bad, words in (("reddish", "not a colour"), ((1, 2), "3 or 4"), ((0, 0, 300), "0..255"), ("1,2,x", "colour")):
        with pytest.raises(ValueError, match=words):
            personseg.remove_background(rgb, onnx_model, bgcolor=bad)


@pytest.mark.parametrize("field", ["threshold", "edge_cutoff", "fill_holes", "feather", "crop_margin"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_and_inf_options_name_the_option(field, value) -> None:
    with pytest.raises(ValueError, match=f"{field}: must be a finite number"):
        RemoveOptions(**{field: value})


def test_subject_main_keeps_the_central_person_and_drops_the_one_at_the_edge(onnx_model) -> None:
    rgb, big, small = two_people()
    every = personseg.remove_background(rgb, onnx_model, only_mask=True)
    main = personseg.remove_background(rgb, onnx_model, only_mask=True, subject="main")
    assert every[small].mean() > 200 and every[big].mean() > 200  # the default, "all", keeps both
    assert main[small].max() == 0 and main[big].mean() > 200
    np.testing.assert_array_equal(main[big], every[big])  # the kept person is untouched
    # Chosen before the other steps: a hard mask, holes and crop then see the main person only.
    cropped = segment(rgb, onnx_model, RemoveOptions(subject="main", soft=False, crop=True, crop_margin=0))
    rows, cols = np.flatnonzero(big.any(1)), np.flatnonzero(big.any(0))
    assert abs(cropped.alpha.shape[0] - (rows[-1] + 1 - rows[0])) <= 3
    assert abs(cropped.alpha.shape[1] - (cols[-1] + 1 - cols[0])) <= 3
