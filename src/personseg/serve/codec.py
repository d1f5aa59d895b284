"""Bytes in and out of the API: reading and probing an upload, and rendering the result as PNG / JPEG / WebP.

The image header is probed before anything is decoded, so a decompression bomb, a non-image or an image that
cannot be decoded within the memory budget costs microseconds (413 / 415), and only common raster formats are
accepted (no EPS, which would run Ghostscript).
``render`` runs in a worker thread of :class:`~personseg.serve.pool.InferencePool`.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from fastapi import HTTPException, Request
from PIL import Image

from personseg.inference.io import ImageTooLargeError, check_budget, check_encodable, encode_image
from personseg.inference.options import Background
from personseg.inference.remove import segment
from personseg.serve.options import MaskQuery, RemoveQuery
from personseg.serve.pool import ModelPool

#: Formats the server decodes; others (EPS runs Ghostscript, PSD, ICO ...) are refused with 415.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
MEDIA_TYPES = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg"}


def probe_image(data: bytes, max_pixels: int | None, max_memory: int | None = None, what: str = "upload") -> None:
    """Refuse empty, non-image, unsupported-format, oversized and undecodable-within-``max_memory`` images from
    the header alone."""
    if not data:
        raise HTTPException(400, f"{what}: empty body; send an image (multipart field 'file' or the raw bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # malformed EXIF and the like: not the log's business
        try:
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as img:
                width, height = img.size
                mode, fmt = img.mode, img.format
        except Image.DecompressionBombError as exc:
            raise HTTPException(413, f"{what}: image too large ({' '.join(str(exc).split())})") from None
        except Image.UnidentifiedImageError:
            formats = ", ".join(ACCEPTED_FORMATS)
            raise HTTPException(415, f"{what}: not an image in a supported format ({formats})") from None
        except Exception as exc:
            raise HTTPException(400, f"{what}: corrupt image header ({' '.join(str(exc).split())})") from None
    if max_pixels is not None and width * height > max_pixels:
        raise HTTPException(
            413, f"{what}: image is {width}x{height}, over the server's {max_pixels / 1e6:g} MP limit (--max-pixels)"
        )
    try:
        check_budget((width, height), mode, fmt, max_memory, what)
    except ImageTooLargeError as exc:
        raise HTTPException(413, str(exc)) from None


async def read_upload(request: Request) -> tuple[bytes, bytes | None]:
    """(image bytes, optional background image bytes) from a multipart form or a raw image body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=2, max_fields=2)
        try:
            parts = {}
            for field in ("file", "background"):
                part = form.get(field)
                if part is not None and isinstance(part, str):
                    raise HTTPException(400, f"form field {field!r} must be a file upload, not text")
                parts[field] = await part.read() if part is not None else None
        finally:
            await form.close()
        if parts["file"] is None:
            raise HTTPException(400, "multipart upload without a 'file' field: send the image as field 'file'")
        return parts["file"], parts["background"]
    if content_type and not (content_type.startswith("image/") or content_type == "application/octet-stream"):
        raise HTTPException(
            415,
            f"Content-Type {content_type} is not an image: send multipart/form-data with field 'file', "
            "or the raw bytes as image/* or application/octet-stream",
        )
    return await request.body(), None


# --- rendering (in a worker thread) ---------------------------------------------------------------------------


def encode(array: np.ndarray, fmt: str) -> bytes:
    """PNG / JPEG through :func:`encode_image`; WebP (with alpha) through OpenCV."""
    if fmt != "webp":
        return encode_image(array, f".{fmt}")
    check_encodable(array, ".webp")
    code = {4: cv2.COLOR_RGBA2BGRA, 3: cv2.COLOR_RGB2BGR}.get(array.shape[2] if array.ndim == 3 else 0)
    bgr = cv2.cvtColor(array, code) if code is not None else array
    ok, buf = cv2.imencode(".webp", np.ascontiguousarray(bgr), [cv2.IMWRITE_WEBP_QUALITY, 90])
    if not ok:
        raise ValueError(f"could not encode a {array.shape} image as WebP")
    return buf.tobytes()


def render(
    data: bytes,
    models: ModelPool,
    query: MaskQuery,
    background: bytes | None,
    max_pixels: int | None,
    max_memory: int | None = None,
) -> bytes:
    """Segment ``data`` and encode what ``query`` asks for (a model's first use loads it, here in the worker)."""
    model = models.get(query.model)
    seg = segment(data, model, query.remove_options(), max_pixels=max_pixels, name="upload", max_memory=max_memory)
    if not isinstance(query, RemoveQuery):  # /v1/mask
        return encode(seg.mask(), "png")
    if query.mask_only:
        return encode(seg.mask(), query.format)
    new = query.background(background).loaded(max_pixels, max_memory)
    if query.format == "jpg" and new.kind is None:
        new = Background(color=(255, 255, 255))  # JPEG has no alpha: white unless asked otherwise
    return encode(seg.replaced(new) if new.kind is not None else seg.cutout(), query.format)


def check_combination(query: MaskQuery, background: bytes | None) -> None:
    """400 for options ``render`` cannot honour together (two backgrounds, a see-through colour in a JPEG),
    before the request takes a worker."""
    if not isinstance(query, RemoveQuery):
        return
    try:
        new = query.background(background)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if query.format == "jpg" and new.see_through:
        raise HTTPException(400, "format=jpg cannot hold a see-through bg_color: use png or webp")
