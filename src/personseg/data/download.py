"""Fetch, verify and unpack remote files: the generic half of ``personseg data download``.

:func:`download_file` streams a URL into ``DEST.part`` (resuming a partial one with an HTTP Range request),
checks the size and checksum, and only then renames it to ``DEST``; an existing complete ``DEST`` is not
fetched again. :func:`extract` unpacks a zip or tar and refuses members that would land outside the target.
Nothing here deletes a file that failed verification: the error names it and says what to do.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import socket
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_USER_AGENT = "personseg-data/0.1 (+https://pypi.org/project/personseg)"


class DownloadError(RuntimeError):
    """A file could not be fetched or does not match what the registry expects."""


class UnreachableError(DownloadError):
    """The server could not be reached at all (no network, DNS failure, refused): retrying will not help."""


OFFLINE_HINT = (
    "no network? fetch the archive on another machine and pass --url file:///path/to/it (or a mirror's URL), "
    "or train on a folder of your own with images/ and masks/ (--data DIR)"
)


class ChecksumError(DownloadError, ValueError):
    """A file's size or digest differs from the recorded one: a download (the file is kept for inspection) or a
    shipped model (:mod:`personseg.inference.registry`)."""


class UnsafeArchiveError(RuntimeError):
    """An archive member would be written outside the extraction directory (or is a link or device)."""


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_digest(path: Path, algorithm: str, expected: str, actual: str) -> None:
    if actual.lower() != expected.lower():
        raise ChecksumError(
            f"{algorithm} mismatch for {path}: expected {expected.lower()}, got {actual} "
            "(file kept; delete it to download again)"
        )


def _check_size(path: Path, expected: int | None) -> None:
    actual = path.stat().st_size
    if expected is not None and actual != expected:
        raise ChecksumError(
            f"size mismatch for {path}: expected {expected} bytes, got {actual} "
            "(file kept; delete it to download again)"
        )


def _open(url: str, offset: int, timeout: float):
    """Open ``url`` asking for bytes from ``offset`` on; returns (response or None when 416, status)."""
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial file already holds everything the server has
            return None, 416
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:  # DNS failure, refused, unreachable: nothing was transferred
        if isinstance(exc.reason, TimeoutError | socket.timeout):
            raise TimeoutError(f"timed out connecting to {url}") from None  # a slow server: worth a retry
        host = urllib.parse.urlsplit(url).netloc or url
        raise UnreachableError(f"cannot reach {host} ({exc.reason}); {OFFLINE_HINT}") from None
    return response, response.status


def _remote_total(response, offset: int) -> int | None:
    """Full file size the server announces (Content-Range total, else offset + Content-Length)."""
    content_range = response.headers.get("Content-Range", "")
    if "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return offset + int(length) if length is not None else None


def _fetch_into(url: str, part: Path, size: int | None, progress: bool, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (one HTTP request)."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset >= size:
        return  # complete (or too long, which verification reports)
    response, status = _open(url, offset, timeout)
    if response is None:
        return
    with response:
        if offset and status != 206:
            log.info("%s ignores Range requests; downloading %s from the start", url, part.name)
            offset = 0
        elif offset:
            start = response.headers.get("Content-Range", "").removeprefix("bytes ").split("-", 1)[0]
            if start != str(offset):
                raise DownloadError(f"{url}: asked for bytes from {offset}, server sent range {start!r}")
            log.info("resuming %s at byte %d", part.name, offset)
        total = _remote_total(response, offset)
        if size is not None and total is not None and total != size:
            raise DownloadError(f"{url}: server reports {total} bytes, the registry expects {size}")
        bar = _progress_bar(part.name, total or size, offset) if progress else None
        try:
            with open(part, "ab" if offset else "wb") as f:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    f.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    received = part.stat().st_size
    if total is not None and received < total:  # http.client ends a short body silently: resume it
        raise ConnectionError(f"connection closed after {received} of {total} bytes")


def _progress_bar(name: str, total: int | None, initial: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with personseg[train]; without it there is simply no bar
        return None
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name)


def download_file(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = False,
    warn_unpinned: bool = True,
    attempts: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` unless a complete copy is already there; returns ``dest``.

    Bytes go to ``dest + '.part'``; an interrupted transfer (this run or an earlier one) resumes from the
    partial file with an HTTP Range request, up to ``attempts`` times. The finished file is checked against
    ``size`` and ``sha256`` (``md5`` only when no sha256 is pinned) before it is renamed into place. With no
    sha256 pinned a warning carries the computed one, so that it can be pinned (``warn_unpinned=False``
    silences it for files that are never pinned, such as single images).
    """
    dest = Path(dest)
    if dest.exists():
        _check_size(dest, size)
        if sha256 is not None:
            _check_digest(dest, "sha256", sha256, file_digest(dest))
        log.info("%s already downloaded", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            _fetch_into(url, part, size, progress, timeout)
            break
        except (OSError, http.client.HTTPException) as exc:  # dropped connection, timeout, refused: resume
            if attempt == attempts:
                kept = part.exists() and part.stat().st_size > 0
                where = f"partial file kept at {part}; run again to resume" if kept else OFFLINE_HINT
                raise DownloadError(f"{url}: {exc} ({where})") from None
            log.warning("download of %s interrupted (%s); resuming (attempt %d/%d)", url, exc, attempt + 1, attempts)
            time.sleep(0.5 * attempt)
    if not part.exists():
        raise DownloadError(f"{url}: server sent nothing")
    _check_size(part, size)
    digest = file_digest(part)
    if sha256 is not None:
        _check_digest(part, "sha256", sha256, digest)
    elif md5 is not None:
        _check_digest(part, "md5", md5, file_digest(part, "md5"))
    if sha256 is None and warn_unpinned:
        log.warning(
            "%s has no published sha256 to check against%s; computed sha256=%s (pin it in the registry)",
            dest.name,
            " (md5 matched)" if md5 else "",
            digest,
        )
    os.replace(part, dest)
    log.info("downloaded %s (%d bytes)", dest, dest.stat().st_size)
    return dest


def _safe_target(root: Path, name: str, archive: Path) -> Path:
    """Where member ``name`` would be written, or UnsafeArchiveError when that is outside ``root``."""
    pure = PurePosixPath(name.replace("\\", "/"))
    target = (root / pure).resolve()
    if pure.is_absolute() or ".." in pure.parts or (target != root and root not in target.parents):
        raise UnsafeArchiveError(f"{archive}: member {name!r} would be written outside {root}; refusing to extract")
    return target


def extract(archive: str | Path, dest: str | Path) -> Path:
    """Unpack a zip or tar (any compression) into ``dest``; the format is read from the content, not the name.

    Every member is checked first: absolute paths, ``..`` components, links and device files are refused
    with :class:`UnsafeArchiveError` before anything is written. A finished extraction leaves a marker
    file, so calling this again is a no-op.
    """
    archive, dest = Path(archive), Path(dest)
    marker = dest / ".extracted"
    if marker.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _safe_target(root, info.filename, archive)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symlink; refusing to extract")
            zf.extractall(root)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for member in members:
                _safe_target(root, member.name, archive)
                if not (member.isfile() or member.isdir()):
                    raise UnsafeArchiveError(
                        f"{archive}: member {member.name!r} is a link or special file; refusing to extract"
                    )
            if hasattr(tarfile, "data_filter"):  # belt and braces where Python has extraction filters
                tf.extractall(root, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tf.extractall(root, members=members)
    else:
        raise DownloadError(f"{archive}: not a zip or tar archive (an HTML error page saved as the file?)")
    marker.touch()
    return dest


def remove_tree(path: str | Path) -> None:
    """Delete an extraction directory (intermediate data only, never a download)."""
    shutil.rmtree(path, ignore_errors=True)
