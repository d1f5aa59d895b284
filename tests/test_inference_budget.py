"""The working-memory budget per image: judged from the header, large images decoded reduced, the rest refused."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from personseg.inference import budget, compose, refine
from personseg.inference.io import ImageTooLargeError, read_image
from synthetic import person

REPO = Path(__file__).resolve().parents[1]


def png_header(width: int, height: int, color_type: int = 2) -> bytes:
    """A PNG claiming width x height with almost no pixel data: nothing large unless someone decodes it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def encoded(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_plan_keeps_what_fits_and_shrinks_the_rest() -> None:
    small = budget.plan((4000, 3000), "RGB", budget.DEFAULT_MAX_MEMORY)
    assert not small.reduced and small.fits and small.work_size == (4000, 3000)
    big = budget.plan((9500, 9500), "L", budget.DEFAULT_MAX_MEMORY)
    assert big.reduced and big.fits
    w, h = big.work_size
    assert w * h * budget.WORK_BYTES_PER_PIXEL <= budget.DEFAULT_MAX_MEMORY and abs(w - h) <= 1
    assert budget.plan((9500, 9500), "L", None).work_size == (9500, 9500)  # no budget: full size
    jpeg = budget.plan((8000, 6000), "RGB", 100 * 2**20, jpeg=True)
    assert jpeg.draft_scale in (2, 4, 8) and jpeg.fits
    assert 8000 // jpeg.draft_scale >= jpeg.work_size[0]  # the draft is never smaller than the working size
    # Decoding a 30000 x 30000 RGB PNG alone needs 3.6 GB: no reduction helps, so it cannot fit.
    assert not budget.plan((30000, 30000), "RGB", budget.DEFAULT_MAX_MEMORY).fits


def test_parse_and_describe_sizes() -> None:
    assert budget.parse_bytes("1.5G") == 1536 * 2**20
    assert budget.parse_bytes("512MiB") == 512 * 2**20
    assert budget.parse_bytes("none") is None and budget.parse_bytes("0") is None
    for bad in ("-1G", "1Q", "lots"):
        with pytest.raises(ValueError, match="not a memory size"):
            budget.parse_bytes(bad)
    assert budget.describe(1536 * 2**20) == "1.5 GiB" and budget.describe(300 * 2**20) == "300 MiB"


def test_a_png_over_the_budget_is_decoded_reduced(caplog) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (600, 800, 3), np.uint8)
    data = encoded(rgb, "PNG")
    limit = 100_000 * budget.WORK_BYTES_PER_PIXEL  # room for ~0.1 MP
    with caplog.at_level("WARNING"):
        loaded = read_image(data, max_memory=limit, name="big.png")
    h, w = loaded.rgb.shape[:2]
    assert loaded.original_size == (800, 600) and w * h <= 100_000 and abs(w / h - 800 / 600) < 0.02
    assert "800x600 is processed at" in caplog.text
    assert read_image(data, max_memory=None).original_size is None


def test_a_large_jpeg_is_decoded_with_a_draft() -> None:
    rgb = np.full((1200, 1600, 3), 128, np.uint8)
    data = encoded(rgb, "JPEG", quality=90)
    limit = 50_000 * budget.WORK_BYTES_PER_PIXEL
    assert budget.plan((1600, 1200), "RGB", limit, jpeg=True).draft_scale == 4
    loaded = read_image(data, max_memory=limit)
    assert loaded.rgb.shape[0] * loaded.rgb.shape[1] <= 50_000 and loaded.original_size == (1600, 1200)


def test_exif_orientation_survives_the_reduction(tmp_path) -> None:
    stored = np.zeros((200, 400, 3), np.uint8)
    stored[:50, :50] = (255, 0, 0)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "r.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    loaded = read_image(path, max_memory=20_000 * budget.WORK_BYTES_PER_PIXEL)
    h, w = loaded.rgb.shape[:2]
    assert h > w  # displayed upright: taller than wide
    assert loaded.rgb[: h // 10, -w // 10 :, 0].mean() > 150  # the marker moved to the top right


def test_what_cannot_be_decoded_within_the_budget_is_refused_at_once(monkeypatch) -> None:
    header = png_header(13000, 13000)  # 169 MP RGB: 676 MB to decode
    decoded, load = [], ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or load(self))
    with pytest.raises(ImageTooLargeError, match=r"13000x13000 RGB image needs ~.* over the 256 MiB") as info:
        read_image(header, max_pixels=None, max_memory=256 * 2**20, name="h.png")
    assert decoded == []  # judged from the header alone
    assert "\n" not in str(info.value) and str(info.value).startswith("h.png")


def test_arrays_over_the_budget_are_downscaled() -> None:
    rgb = np.zeros((300, 400, 3), np.uint8)
    loaded = read_image(rgb, max_memory=10_000 * budget.WORK_BYTES_PER_PIXEL)
    assert loaded.rgb.shape[0] * loaded.rgb.shape[1] <= 10_000 and loaded.original_size == (400, 300)


def test_corrupt_exif_warns_nobody(capfd) -> None:
    img = Image.fromarray(np.zeros((20, 30, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 3
    good = exif.tobytes()
    bad = good[:10] + b"\xff\x7f" + good[12:]  # 32767 entries announced, a handful present: Pillow warns
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        loaded = read_image(buf.getvalue())
    assert loaded.rgb.shape[:2] in ((20, 30), (30, 20))
    assert "Warning" not in capfd.readouterr().err


def test_segment_under_a_budget_returns_the_reduced_image(onnx_model) -> None:
    from personseg.inference.remove import remove_background, segment

    img, _ = person(300, 400)
    seg = segment(encoded(img, "PNG"), onnx_model, max_memory=60_000 * budget.WORK_BYTES_PER_PIXEL)
    h, w = seg.image.shape[:2]
    assert h * w <= 60_000 and seg.alpha.shape == (h, w) and seg.source.original_size == (400, 300)
    assert seg.comparison().shape[0] == h
    out = remove_background(img, onnx_model, max_memory=None)
    assert out.shape == (300, 400, 4)


def test_lean_refinement_matches_the_plain_formulas() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 500, 3), np.uint8)
    low = rng.random((40, 64)).astype(np.float32)
    # The band-by-band upsampling of the coefficients equals one full-size resize.
    import cv2

    small = cv2.resize(image, (64, 40), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    coef = cv2.resize(refine.guided_filter_coefficients(small, low, 1, 1e-4), (500, 300))
    guide = image.astype(np.float32) / 255.0
    expected = np.clip((coef[..., :3] * guide).sum(-1) + coef[..., 3], 0, 1)
    got = refine.guided_upsample(low, image, radius=1, chunk_rows=7)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # A wide feather, computed downscaled, stays close to the full-size Gaussian on a real edge.
    alpha = np.zeros((400, 600), np.float32)
    cv2.circle(alpha, (300, 200), 120, 1.0, -1)
    full = cv2.GaussianBlur(alpha, (0, 0), 40, borderType=cv2.BORDER_REPLICATE)
    assert np.abs(refine.feather(alpha, 40) - full).max() < 0.02
    a = compose.alpha_to_uint8(np.linspace(-0.5, 1.5, 101, dtype=np.float32)[None])
    ramp = np.clip(np.linspace(-0.5, 1.5, 101, dtype=np.float32), 0, 1)
    np.testing.assert_array_equal(a, (ramp * np.float32(255) + np.float32(0.5)).astype(np.uint8)[None])


@pytest.mark.slow
def test_a_90_megapixel_png_costs_under_2_gb_in_the_cli(tiny_model, tmp_path) -> None:
    """The issue's case: an 87 KB PNG of 9500 x 9500 (5.2 GB and 29 s before the budget)."""
    Image.new("L", (9500, 9500)).save(tmp_path / "n.png", compress_level=9)
    args = ["remove", str(tmp_path / "n.png"), "-o", str(tmp_path / "out"), "-m", str(tiny_model.onnx)]
    code = (
        "import resource, sys\nfrom personseg.cli import main\n"
        f"rc = main({args!r})\n"
        "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, file=sys.stderr)\nsys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    peak = int(result.stderr.split("peak ")[-1])
    assert peak < 2 * 2**30, f"peak RSS {peak / 2**30:.2f} GiB"
    assert "is processed at" in result.stderr
    with Image.open(tmp_path / "out" / "n_cutout.png") as cut:
        assert cut.width * cut.height * budget.WORK_BYTES_PER_PIXEL <= budget.DEFAULT_MAX_MEMORY
