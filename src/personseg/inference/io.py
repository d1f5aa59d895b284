"""Reading any image into upright 8-bit RGB, and writing files atomically.

``read_image`` accepts a path, bytes, a PIL image or an ndarray; applies the EXIF orientation; converts
grayscale, palette, CMYK, 16-bit and float images to RGB uint8 (an alpha channel is kept aside); refuses
decompression bombs from the header, before decoding; and turns every decoding failure into a one-line
:class:`ImageReadError` that names the file. Writers go through a temp file in the target folder and
``os.replace``, so a crash never leaves a half-written output.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

#: Largest image read by default, in pixels (a 100 MP photo already needs ~1.2 GB as float32 RGB).
DEFAULT_MAX_PIXELS = 100_000_000

ImageSource = str | os.PathLike | bytes | bytearray | Image.Image | np.ndarray


class ImageReadError(ValueError):
    """An input that is not a readable image; the message is one line and names the input."""


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
    source: ImageSource, max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str | None = None
) -> LoadedImage:
    """Decode ``source`` to upright RGB uint8; ``max_pixels=None`` lifts the size limit.

    An ndarray is taken as RGB (not OpenCV's BGR): H x W gray, H x W x 3 RGB or H x W x 4 RGBA, in uint8,
    uint16 (scaled down) or float (in [0, 1], or 0..255 if any value is above 1).
    """
    name = name or source_name(source)
    if isinstance(source, np.ndarray):
        return _from_array(source, name)
    if isinstance(source, Image.Image):
        _check_pixels(source.size, max_pixels, name)
        return _from_pil(source, name)
    if isinstance(source, bytes | bytearray):
        if not source:
            raise ImageReadError(f"{name}: empty input (0 bytes)")
        return _decode(io.BytesIO(bytes(source)), name, max_pixels)
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
                return _decode(f, name, max_pixels)
        except OSError as exc:
            raise ImageReadError(f"{name}: cannot read ({_one_line(exc.strerror or exc)})") from None
    raise TypeError(f"cannot read an image from {type(source).__name__}: pass a path, bytes, PIL image or ndarray")


def _check_pixels(size: tuple[int, int], max_pixels: int | None, name: str) -> None:
    w, h = size
    if max_pixels is not None and w * h > max_pixels:
        raise _too_large(name, f"{w}x{h} ({w * h / 1e6:.0f} MP)", max_pixels)


def _too_large(name: str, size: str, limit: int, pillow: bool = False) -> ImageReadError:
    whose, hint = ("Pillow's own", "PIL.Image.MAX_IMAGE_PIXELS") if pillow else ("the", "--max-pixels / max_pixels")
    return ImageReadError(
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


def _decode(stream: Any, name: str, max_pixels: int | None) -> LoadedImage:
    with warnings.catch_warnings():
        # The size limit is ours (checked from the header below), not PIL's global one.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(stream)
        except Image.DecompressionBombError as exc:
            raise _bomb_error(exc, name, max_pixels) from None
        except Image.UnidentifiedImageError:
            raise ImageReadError(f"{name}: not an image, or a format personseg cannot read") from None
        except Exception as exc:
            raise ImageReadError(f"{name}: corrupt image header ({_one_line(exc)})") from None
        _check_pixels(img.size, max_pixels, name)
        try:
            img.load()
        except Exception as exc:
            raise ImageReadError(f"{name}: truncated or corrupt image data ({_one_line(exc)})") from None
        return _from_pil(img, name)


def _from_pil(img: Image.Image, name: str) -> LoadedImage:
    mode, fmt = img.mode, img.format
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a malformed EXIF block should not cost the whole image
        pass
    try:
        if mode.startswith("I"):  # 16-bit gray ("I" is how PIL holds some 16-bit PNGs): scale, don't clip
            loaded = _from_array(np.asarray(img).clip(0, 65535).astype(np.uint16), name)
        elif mode == "F":
            loaded = _from_array(np.asarray(img), name)
        else:
            alpha = None
            if "A" in mode or "a" in mode or (mode in ("P", "L", "RGB") and "transparency" in img.info):
                rgba = np.asarray(img.convert("RGBA"))
                rgb, alpha = rgba[..., :3], rgba[..., 3].copy()
            else:
                rgb = np.asarray(img.convert("RGB"))
            loaded = LoadedImage(rgb=np.ascontiguousarray(rgb), name=name, alpha=alpha)
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(f"{name}: cannot convert {mode} image to RGB ({_one_line(exc)})") from None
    loaded.mode, loaded.format = mode, fmt
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


# --- writing ---------------------------------------------------------------------------------------------


def encode_image(array: np.ndarray, ext: str = ".png", jpeg_quality: int = 95) -> bytes:
    """Encode an RGB / RGBA / gray uint8 array as PNG or JPEG bytes (OpenCV: several times faster than PIL)."""
    ext = ext.lower()
    if array.ndim == 3 and array.shape[2] == 4:
        if ext not in (".png",):
            raise ValueError(f"{ext} cannot hold an alpha channel: use .png")
        bgr = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    elif array.ndim == 3:
        bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    else:
        bgr = array
    if ext == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    elif ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    else:
        raise ValueError(f"unsupported output format {ext!r}: use .png or .jpg")
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(bgr), params)
    if not ok:
        raise ValueError(f"could not encode a {array.shape} image as {ext}")
    return buf.tobytes()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_image(path: str | os.PathLike, array: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode ``array`` by ``path``'s extension (.png or .jpg) and write it atomically."""
    atomic_write_bytes(path, encode_image(array, Path(path).suffix, jpeg_quality))
