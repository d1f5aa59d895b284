"""read_image on every input kind and mode, one-line errors for bad files, atomic writes."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from personseg.inference.io import ImageReadError, atomic_write_bytes, encode_image, read_image, write_image


def _rgb(h: int = 20, w: int = 30) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 40000, height: int = 40000) -> bytes:
    """A valid PNG header claiming width x height, with a tiny IDAT: nothing large is ever allocated."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0")) + _chunk(b"IEND", b"")


def test_every_source_kind_gives_the_same_pixels(tmp_path) -> None:
    rgb = _rgb()
    path = tmp_path / "a.png"
    path.write_bytes(_png_bytes(rgb))
    for source in (path, str(path), path.read_bytes(), Image.fromarray(rgb), rgb):
        loaded = read_image(source)
        np.testing.assert_array_equal(loaded.rgb, rgb)
        assert loaded.rgb.dtype == np.uint8 and loaded.rgb.flags["C_CONTIGUOUS"]
    assert read_image(path).name == str(path) and read_image(path).format == "PNG"
    assert read_image(path.read_bytes()).name == "<bytes>"


def test_exif_orientation_is_applied(tmp_path) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide, 20 tall
    stored[:5, :5] = (255, 0, 0)  # red marker in the stored top-left
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    loaded = read_image(path)
    assert loaded.rgb.shape == (40, 20, 3)  # displayed upright: 20 wide, 40 tall
    assert loaded.rgb[:5, -5:, 0].mean() > 200 and loaded.rgb[-5:, :5, 0].mean() < 50  # marker now top-right


def test_grayscale_rgba_palette_cmyk_inputs(tmp_path) -> None:
    rgb = _rgb()
    gray = read_image(Image.fromarray(rgb[..., 0]))
    np.testing.assert_array_equal(gray.rgb, np.repeat(rgb[..., :1], 3, axis=2))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)])
    loaded = read_image(_png_bytes(rgba))
    np.testing.assert_array_equal(loaded.rgb, rgb)
    assert loaded.mode == "RGBA" and (loaded.alpha == 77).all()  # alpha kept as a note, not used
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal_path = tmp_path / "p.png"
    pal.save(pal_path, transparency=0)
    loaded = read_image(pal_path)
    assert loaded.mode == "P" and loaded.rgb.shape == (20, 30, 3) and loaded.alpha is not None
    np.testing.assert_array_equal(loaded.rgb, np.asarray(pal.convert("RGB")))
    cmyk_path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(cmyk_path, quality=100)
    loaded = read_image(cmyk_path)
    assert loaded.mode == "CMYK" and loaded.rgb.shape == (20, 30, 3)
    assert np.abs(loaded.rgb.astype(int) - rgb).mean() < 20


def test_sixteen_bit_inputs(tmp_path) -> None:
    values = (np.arange(20 * 30).reshape(20, 30) * 100).astype(np.uint16)
    expected = np.round(values / 257.0).astype(np.uint8)
    gray_path = tmp_path / "gray16.png"
    Image.fromarray(values).save(gray_path)  # PIL mode I;16
    loaded = read_image(gray_path)
    assert loaded.mode.startswith("I")
    assert np.abs(loaded.rgb[..., 0].astype(int) - expected).max() <= 1
    color = np.dstack([values, values // 2, 65535 - values])
    color_path = tmp_path / "rgb16.png"
    cv2.imwrite(str(color_path), color[..., ::-1])  # 16-bit RGB PNG through OpenCV
    loaded = read_image(color_path)
    assert np.abs(loaded.rgb.astype(int) - (color >> 8)).max() <= 1
    np.testing.assert_array_equal(read_image(color).rgb[..., 0], expected)  # uint16 arrays too
    floats = read_image(values.astype(np.float32) / 65535.0).rgb[..., 0]
    assert np.abs(floats.astype(int) - expected).max() <= 1


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.jpg", b"", "empty file"),
        ("notes.txt", b"hello, I am not a picture\n", "not an image"),
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "corrupt|not an image"),
        ("bomb.png", bomb_png(), "over the 100 MP limit"),
    ],
)
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, name, content, reason) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_truncated_jpeg(tmp_path) -> None:
    data = encode_image(_rgb(200, 300), ".jpg")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.jpg: truncated or corrupt") as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_missing_directory_and_bytes_errors(tmp_path) -> None:
    with pytest.raises(ImageReadError, match="nope.png: no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(tmp_path)
    with pytest.raises(ImageReadError, match="<bytes>: empty"):
        read_image(b"")
    with pytest.raises(ImageReadError, match="<upload>: not an image"):
        read_image(b"GIF89 nonsense", name="<upload>")
    with pytest.raises(ImageReadError, match="shape"):
        read_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(TypeError):
        read_image(12)


def test_pixel_limit_is_configurable(tmp_path) -> None:
    data = _png_bytes(_rgb(100, 100))
    with pytest.raises(ImageReadError, match="100x100.*0.005 MP limit"):
        read_image(data, max_pixels=5000)
    assert read_image(data, max_pixels=None).rgb.shape == (100, 100, 3)
    big = tmp_path / "big.png"
    big.write_bytes(bomb_png(12000, 10000))  # 120 MP: over personseg's default, under PIL's own bomb limit
    with pytest.raises(ImageReadError, match="12000x10000"):
        read_image(big)


def test_atomic_writes_leave_no_temp_and_keep_the_old_file_on_failure(tmp_path) -> None:
    target = tmp_path / "out" / "x.png"
    write_image(target, _rgb())
    assert read_image(target).rgb.shape == (20, 30, 3)
    assert os.listdir(target.parent) == ["x.png"]
    assert (target.stat().st_mode & 0o777) == 0o666 & ~_umask()
    before = target.read_bytes()
    with pytest.raises(TypeError):  # fails half-way through writing the temp file
        atomic_write_bytes(target, object())  # type: ignore[arg-type]
    assert target.read_bytes() == before and os.listdir(target.parent) == ["x.png"]
    with pytest.raises(ValueError, match="alpha"):
        encode_image(np.zeros((2, 2, 4), np.uint8), ".jpg")
    with pytest.raises(ValueError, match="unsupported"):
        encode_image(_rgb(), ".gif")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_written_images_round_trip(tmp_path: Path) -> None:
    rgba = np.dstack([_rgb(), np.full((20, 30), 9, np.uint8)])
    write_image(tmp_path / "a.png", rgba)
    back = np.asarray(Image.open(tmp_path / "a.png"))
    np.testing.assert_array_equal(back, rgba)
    write_image(tmp_path / "m.png", rgba[..., 3])
    assert Image.open(tmp_path / "m.png").mode == "L"


def test_images_too_large_for_a_format_fail_before_the_encoder(capfd) -> None:
    from personseg.inference.io import check_encodable

    wide = np.zeros((2, 66000, 3), np.uint8)
    with pytest.raises(ValueError, match=r"66000x2 image is too large for \.jpg \(at most 65500"):
        encode_image(wide, ".jpg")
    assert "[ERROR" not in capfd.readouterr().err  # OpenCV was never asked
    assert len(encode_image(wide, ".png")) > 0
    with pytest.raises(ValueError, match="webp"):
        check_encodable(np.zeros((20000, 2), np.uint8), ".webp")


def test_atomic_write_files_is_all_or_none(tmp_path, monkeypatch) -> None:
    from personseg.inference.io import atomic_write_files

    targets = {tmp_path / f"{k}.bin": k.encode() * 10 for k in ("a", "b", "c")}
    (tmp_path / "b.bin").write_bytes(b"old")
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        atomic_write_files(targets)
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(os.listdir(tmp_path)) == ["b.bin"] and (tmp_path / "b.bin").read_bytes() == b"old"
    atomic_write_files(targets)
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "b.bin", "c.bin"]
    assert (tmp_path / "c.bin").read_bytes() == b"c" * 10
