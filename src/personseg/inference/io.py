"""Reading any image into upright 8-bit RGB, and writing files atomically.

``read_image`` accepts a path, bytes, a PIL image or an ndarray; applies the EXIF orientation; converts
grayscale, palette, CMYK, 16-bit and float images to RGB uint8 (an alpha channel is kept aside); refuses
decompression bombs from the header, before decoding; reduces an image over its memory budget while decoding
(:mod:`~personseg.inference.budget`); and turns every decoding failure into a one-line :class:`ImageReadError`
that names the file. The writers live in :mod:`~personseg.inference.write` and are importable from here too.
"""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from personseg.inference import budget
from personseg.inference.write import (  # noqa: F401 - the writers' historical home
    MAX_SIDE,
    atomic_write_bytes,
    atomic_write_files,
    check_encodable,
    encode_image,
    write_image,
)

log = logging.getLogger(__name__)

#: Largest image read by default, in pixels (a 100 MP photo already needs ~1.2 GB as float32 RGB).
DEFAULT_MAX_PIXELS = 100_000_000

ImageSource = str | os.PathLike | bytes | bytearray | Image.Image | np.ndarray


class ImageReadError(ValueError):
    """An input that is not a readable image; the message is one line and names the input."""


class ImageTooLargeError(ImageReadError):
    """An image over the pixel limit, or one that cannot be decoded within the memory budget (HTTP 413)."""


@dataclass
class LoadedImage:
    """An input decoded to what the model needs, plus what was noted on the way."""

    rgb: np.ndarray
    """H x W x 3 uint8, upright (EXIF orientation applied)."""
    name: str
    """The file name, or ``<bytes>`` / ``<PIL image>`` / ``<array>``, for messages."""
    alpha: np.ndarray | None = None
    """The input's own alpha channel (H x W uint8) if it had one; inference ignores it."""
    mode: str = "RGB"
    """The input's PIL mode (or ``array``), before conversion."""
    format: str | None = None
    """The decoder's format name (``JPEG``, ``PNG`` ...) for file and bytes inputs."""
    original_size: tuple[int, int] | None = None
    """(width, height) of the input when it was reduced to fit the memory budget; ``None`` if it was not."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def source_name(source: Any) -> str:
    """How an input is named in messages."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    if isinstance(source, bytes | bytearray):
        return "<bytes>"
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<PIL image>"
    return "<array>"


def read_image(
    source: ImageSource,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    name: str | None = None,
    max_memory: int | None = None,
) -> LoadedImage:
    """Decode ``source`` to upright RGB uint8; ``max_pixels=None`` lifts the size limit.

    ``max_memory``: the working-memory budget of the image in bytes (see :mod:`personseg.inference.budget`);
    a larger image comes back reduced (``original_size`` says from what), one that cannot even be decoded
    within it raises :class:`ImageTooLargeError`. ``None``: full size whatever it costs.
    An ndarray is taken as RGB (not OpenCV's BGR): H x W gray, H x W x 3 RGB or H x W x 4 RGBA, in uint8,
    uint16 (scaled down) or float (in [0, 1], or 0..255 if any value is above 1).
    """
    name = name or source_name(source)
    if isinstance(source, np.ndarray):
        return _fit_array(_from_array(source, name), max_memory)
    if isinstance(source, Image.Image):
        _check_pixels(source.size, max_pixels, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # malformed EXIF: Pillow copes, stderr needs not know
            return _from_pil(source, name, _plan(source, name, max_memory))
    if isinstance(source, bytes | bytearray):
        if not source:
            raise ImageReadError(f"{name}: empty input (0 bytes)")
        return _decode(io.BytesIO(bytes(source)), name, max_pixels, max_memory)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageReadError(f"{name}: no such file") from None
        except OSError as exc:
            raise ImageReadError(f"{name}: cannot read ({_one_line(exc.strerror or exc)})") from None
        if path.is_dir():
            raise ImageReadError(f"{name}: is a directory, not an image")
        if size == 0:
            raise ImageReadError(f"{name}: empty file (0 bytes)")
        try:
            with open(path, "rb") as f:
                return _decode(f, name, max_pixels, max_memory)
        except OSError as exc:
            raise ImageReadError(f"{name}: cannot read ({_one_line(exc.strerror or exc)})") from None
    raise TypeError(f"cannot read an image from {type(source).__name__}: pass a path, bytes, PIL image or ndarray")


def _check_pixels(size: tuple[int, int], max_pixels: int | None, name: str) -> None:
    w, h = size
    if max_pixels is not None and w * h > max_pixels:
        raise _too_large(name, f"{w}x{h} ({w * h / 1e6:.0f} MP)", max_pixels)


def check_budget(size: tuple[int, int], mode: str, fmt: str | None, max_memory: int | None, name: str) -> budget.Plan:
    """The budget's plan for an image, from its header; :class:`ImageTooLargeError` if it cannot fit."""
    plan = budget.plan(size, mode, max_memory, jpeg=fmt in ("JPEG", "MPO"))
    if not plan.fits:
        w, h = size
        raise ImageTooLargeError(
            f"{name}: a {w}x{h} {mode} image needs ~{budget.describe(plan.peak_bytes)} to decode, over the "
            f"{budget.describe(max_memory)} memory budget per image; raise --max-memory / max_memory if it is genuine"
        )
    return plan


def _plan(img: Image.Image, name: str, max_memory: int | None) -> budget.Plan:
    return check_budget(img.size, img.mode, img.format, max_memory, name)


def _too_large(name: str, size: str, limit: int, pillow: bool = False) -> ImageTooLargeError:
    whose, hint = ("Pillow's own", "PIL.Image.MAX_IMAGE_PIXELS") if pillow else ("the", "--max-pixels / max_pixels")
    return ImageTooLargeError(
        f"{name}: image is {size}, over {whose} {limit / 1e6:g} MP limit (a decompression bomb?); "
        f"raise {hint} if it is genuine"
    )


def _bomb_error(exc: Exception, name: str, max_pixels: int | None) -> ImageReadError:
    # Pillow refuses images over 2 x Image.MAX_IMAGE_PIXELS itself, before we see the size.
    found = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(exc))
    if not found:
        return ImageReadError(f"{name}: {_one_line(exc)}")
    pixels, pil_limit = int(found.group(1)), int(found.group(2))
    if max_pixels is not None and pixels > max_pixels:
        return _too_large(name, f"{pixels / 1e6:.0f} MP", max_pixels)
    return _too_large(name, f"{pixels / 1e6:.0f} MP", pil_limit, pillow=True)


def _decode(stream: Any, name: str, max_pixels: int | None, max_memory: int | None) -> LoadedImage:
    with warnings.catch_warnings():
        # The size limit is ours (checked from the header below), not PIL's global one.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # Malformed EXIF, odd palettes ...: Pillow copes and says so with a UserWarning that users need not see.
        warnings.simplefilter("ignore", UserWarning)
        try:
            img = Image.open(stream)
        except Image.DecompressionBombError as exc:
            raise _bomb_error(exc, name, max_pixels) from None
        except Image.UnidentifiedImageError:
            raise ImageReadError(f"{name}: not an image, or a format personseg cannot read") from None
        except Exception as exc:
            raise ImageReadError(f"{name}: corrupt image header ({_one_line(exc)})") from None
        _check_pixels(img.size, max_pixels, name)
        plan = _plan(img, name, max_memory)
        if plan.draft_scale > 1:
            img.draft(None, plan.work_size)  # JPEG: decode at 1/2, 1/4 or 1/8 (at least the working size)
        try:
            img.load()
        except Exception as exc:
            raise ImageReadError(f"{name}: truncated or corrupt image data ({_one_line(exc)})") from None
        return _from_pil(img, name, plan)


#: EXIF orientation -> the transpose that shows the image upright (as in ``PIL.ImageOps.exif_transpose``).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(img: Image.Image) -> Image.Transpose | None:
    try:
        return _ORIENTATION.get(img.getexif().get(0x0112, 1))
    except Exception:  # a malformed EXIF block should not cost the whole image
        return None


def _reduce(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` area-averaged down to ``size`` (Pillow's BOX filter: as OpenCV's INTER_AREA, 3x faster than Lanczos)."""
    if img.mode in ("1", "P"):  # resizing these would be nearest-neighbour
        img = img.convert("RGBA" if "transparency" in img.info else ("L" if img.mode == "1" else "RGB"))
    return img.resize(size, Image.Resampling.BOX)


def _from_pil(img: Image.Image, name: str, plan: budget.Plan | None = None) -> LoadedImage:
    mode, fmt = img.mode, img.format
    turn = _orientation(img)
    original_size = None
    try:
        if plan is not None and img.size != plan.work_size:
            original_size = plan.size
            img = _reduce(img, plan.work_size)
            log.warning(
                "%s: %dx%d is processed at %dx%d to stay within the memory budget per image "
                "(--max-memory / max_memory)",
                name,
                *plan.size,
                *plan.work_size,
            )
        if turn is not None:
            img = img.transpose(turn)
        if mode.startswith("I"):  # 16-bit gray ("I" is how PIL holds some 16-bit PNGs): scale, don't clip
            loaded = _from_array(np.asarray(img).clip(0, 65535).astype(np.uint16), name)
        elif mode == "F":
            loaded = _from_array(np.asarray(img), name)
        else:
            alpha = None
            if "A" in img.mode or "a" in img.mode or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
                rgba = np.asarray(img.convert("RGBA"))
                rgb, alpha = rgba[..., :3], rgba[..., 3].copy()
            else:
                rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
            loaded = LoadedImage(rgb=np.ascontiguousarray(rgb), name=name, alpha=alpha)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageTooLargeError(f"{name}: out of memory converting a {img.size[0]}x{img.size[1]} image") from None
    except Exception as exc:
        raise ImageReadError(f"{name}: cannot convert {mode} image to RGB ({_one_line(exc)})") from None
    loaded.mode, loaded.format, loaded.original_size = mode, fmt, original_size
    return loaded


def _fit_array(loaded: LoadedImage, max_memory: int | None) -> LoadedImage:
    """An array input over the budget, area-downscaled to the working size (the caller already paid for it)."""
    h, w = loaded.rgb.shape[:2]
    plan = budget.plan((w, h), "RGB", max_memory)
    if not plan.reduced:
        return loaded
    log.warning(
        "%s: %dx%d is processed at %dx%d to stay within the memory budget per image (--max-memory / max_memory)",
        loaded.name,
        w,
        h,
        *plan.work_size,
    )
    loaded.rgb = cv2.resize(loaded.rgb, plan.work_size, interpolation=cv2.INTER_AREA)
    if loaded.alpha is not None:
        loaded.alpha = cv2.resize(loaded.alpha, plan.work_size, interpolation=cv2.INTER_AREA)
    loaded.original_size = (w, h)
    return loaded


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr.astype(np.float32))
        scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0  # floats in [0, 1], or already 0..255
        return (np.clip(arr * scale, 0.0, 255.0) + 0.5).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and arr.max() <= 255 and arr.dtype != np.uint16:
            return arr.clip(0, 255).astype(np.uint8)
        # 16-bit data (also what PIL's 32-bit "I" mode holds for 16-bit PNGs): keep the high byte, rounded.
        return ((arr.astype(np.float32).clip(0, 65535) / 257.0) + 0.5).astype(np.uint8)
    raise ImageReadError(f"{name}: unsupported array dtype {arr.dtype}")


def _from_array(arr: np.ndarray, name: str) -> LoadedImage:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        gray = _to_uint8(arr, name)
        return LoadedImage(rgb=np.repeat(gray[..., None], 3, axis=2), name=name, mode="array")
    if arr.ndim == 3 and arr.shape[2] in (3, 4) and min(arr.shape[:2]) > 0:
        arr = _to_uint8(arr, name)
        alpha = arr[..., 3].copy() if arr.shape[2] == 4 else None
        return LoadedImage(rgb=np.ascontiguousarray(arr[..., :3]), name=name, alpha=alpha, mode="array")
    raise ImageReadError(f"{name}: expected an H x W, H x W x 3 or H x W x 4 image array, got shape {arr.shape}")
