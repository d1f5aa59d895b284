"""Writing images: encoding by extension (checked against each format's size limit first) and atomic writes.

Writers go through a temp file in the target folder and ``os.replace``, so a crash never leaves a half-written
output, and :func:`atomic_write_files` writes the outputs of one image all or none (a full disk half-way leaves
none of them).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np


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
    check_encodable(array, ext)
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(bgr), params)
    if not ok:
        raise ValueError(f"could not encode a {array.shape[1]}x{array.shape[0]} image as {ext}")
    return buf.tobytes()


#: Largest width or height each output format holds (libjpeg: 65500, libwebp: 16383); checked before encoding,
#: so the encoder never fails with its own message on stderr.
MAX_SIDE = {".jpg": 65500, ".jpeg": 65500, ".webp": 16383, ".png": 2**31 - 1}


def check_encodable(array: np.ndarray, ext: str) -> None:
    """ValueError naming the limit when ``array`` is too wide or tall for the ``ext`` format."""
    h, w = array.shape[:2]
    limit = MAX_SIDE.get(ext.lower())
    if limit is not None and max(h, w) > limit:
        raise ValueError(f"a {w}x{h} image is too large for {ext} (at most {limit} pixels a side): use .png")


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process's umask, read once at import: reading it means setting it, and ``personseg remove --jobs`` writes
#: from several threads at once, where a umask of 0 seen between the two calls would make files world-writable.
_UMASK = _read_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_files(files: dict[Path, bytes]) -> None:
    """Write several files all or none: every one to a temp file first, then rename them all.

    A failure while writing (a full disk) removes the temp files and leaves the targets untouched; one while
    renaming (very unlikely once the data is on disk) removes the targets already renamed.
    """
    temps: dict[Path, str] = {}
    try:
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps[path] = tmp
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o666 & ~_UMASK)
    except BaseException:
        for tmp in temps.values():
            Path(tmp).unlink(missing_ok=True)
        raise
    renamed: list[Path] = []
    try:
        for path, tmp in temps.items():
            os.replace(tmp, path)
            renamed.append(path)
    except BaseException:
        for path in renamed:
            path.unlink(missing_ok=True)
        for tmp in temps.values():
            Path(tmp).unlink(missing_ok=True)
        raise


def write_image(path: str | os.PathLike, array: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode ``array`` by ``path``'s extension (.png or .jpg) and write it atomically."""
    atomic_write_bytes(path, encode_image(array, Path(path).suffix, jpeg_quality))
