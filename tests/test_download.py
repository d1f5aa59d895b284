"""Dataset download + conversion against a local HTTP server serving generated look-alike archives.

Nothing here touches the internet: each registry entry is pointed (monkeypatch) at 127.0.0.1, where a
Range-capable server serves small archives laid out like the real ones.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
import zlib
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import personseg.data.sources as sources
from personseg.cli import main as cli_main
from personseg.data.download import (
    ChecksumError,
    DownloadError,
    UnreachableError,
    UnsafeArchiveError,
    download_file,
    extract,
)
from personseg.data.sources import RemoteFile, prepare

REPO = Path(__file__).resolve().parents[1]


# --- a local file server that honours Range requests and can drop a connection mid-body -----------------
class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        body, status = data, 200
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if match:
            start = int(match[1])
            end = int(match[2]) if match[2] else len(data) - 1
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            body, status = data[start : end + 1], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        self.end_headers()
        if self.path in server.drop_once:  # announce the full body, send half, hang up
            server.drop_once.discard(self.path)
            body = body[: len(body) // 2]
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    files: dict[str, bytes]
    requests: list[tuple[str, str | None]]
    drop_once: set[str]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


@pytest.fixture
def server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.drop_once = {}, [], set()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _serve(monkeypatch, server, name: str, payloads: dict[str, bytes], pin: bool = True) -> None:
    """Serve ``payloads``; point registry entry ``name`` at them (size and sha256 pinned if ``pin``)."""
    entry = sources.SOURCES[name]
    files = []
    for remote in entry.files:
        data = payloads[remote.filename]
        server.files[f"/{remote.filename}"] = data
        sha = _sha(data) if pin else None
        files.append(RemoteFile(server.url(remote.filename), remote.filename, size=len(data), sha256=sha))
    monkeypatch.setitem(sources.SOURCES, name, replace(entry, files=tuple(files)))


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _jpg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buf, format="JPEG")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _mask(path: Path) -> np.ndarray:
    with Image.open(path) as m:
        assert m.mode == "L"
        return np.asarray(m)


# --- Penn-Fudan look-alike: PNGImages/ + PedMasks/ with instance ids ----------------------------------
PF_INSTANCES = {
    "FudanPed00001": np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 2, 2], [0, 0, 2, 0]], np.uint8),
    "PennPed00002": np.array([[3, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], np.uint8),
}


def penn_fudan_zip() -> bytes:
    members = {"PennFudanPed/readme.txt": b"Penn-Fudan look-alike\n"}
    for stem, instances in PF_INSTANCES.items():
        members[f"PennFudanPed/PNGImages/{stem}.png"] = _png(np.full((4, 4, 3), 128, np.uint8))
        members[f"PennFudanPed/PedMasks/{stem}_mask.png"] = _png(instances)
        members[f"PennFudanPed/Annotation/{stem}.txt"] = b"# PASCAL Annotation Version 1.00\n"
    return _zip(members)


def _check_penn_fudan(root: Path) -> None:
    assert sorted(p.name for p in (root / "images").iterdir()) == ["FudanPed00001.png", "PennPed00002.png"]
    for stem, instances in PF_INSTANCES.items():
        mask = _mask(root / "masks" / f"{stem}.png")
        np.testing.assert_array_equal(mask, np.where(instances > 0, 255, 0))  # every instance is person


def test_penn_fudan_download_verify_convert(server, monkeypatch, tmp_path):
    _serve(monkeypatch, server, "penn-fudan", {"PennFudanPed.zip": penn_fudan_zip()})
    assert prepare("penn-fudan", tmp_path) == 2
    _check_penn_fudan(tmp_path)
    leftovers = sorted(p.name for p in (tmp_path / ".download").iterdir())
    assert leftovers == ["penn-fudan.done.json"]  # archive and unpacked tree removed, marker kept


def test_rerun_is_a_no_op(server, monkeypatch, tmp_path):
    _serve(monkeypatch, server, "penn-fudan", {"PennFudanPed.zip": penn_fudan_zip()})
    prepare("penn-fudan", tmp_path)
    requests, mtimes = len(server.requests), [p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")]
    assert prepare("penn-fudan", tmp_path) == 2
    assert len(server.requests) == requests
    assert [p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")] == mtimes


def test_resume_from_partial_file(server, monkeypatch, tmp_path):
    archive = penn_fudan_zip()
    _serve(monkeypatch, server, "penn-fudan", {"PennFudanPed.zip": archive})
    part = tmp_path / ".download" / "PennFudanPed.zip.part"
    part.parent.mkdir()
    part.write_bytes(archive[:100])
    prepare("penn-fudan", tmp_path, keep_archives=True)
    assert server.requests == [("/PennFudanPed.zip", "bytes=100-")]
    assert _sha((tmp_path / ".download" / "PennFudanPed.zip").read_bytes()) == _sha(archive)
    assert not part.exists()
    _check_penn_fudan(tmp_path)


def test_dropped_connection_is_resumed(server, tmp_path):
    data = os.urandom(50_000)
    server.files["/blob.bin"] = data
    server.drop_once.add("/blob.bin")
    dest = download_file(server.url("blob.bin"), tmp_path / "blob.bin", size=len(data), sha256=_sha(data))
    assert dest.read_bytes() == data
    assert server.requests == [("/blob.bin", None), ("/blob.bin", "bytes=25000-")]


def test_checksum_mismatch_is_one_line_and_keeps_the_file(server, tmp_path):
    server.files["/blob.bin"] = b"not what was pinned"
    with pytest.raises(ChecksumError) as info:
        download_file(server.url("blob.bin"), tmp_path / "blob.bin", sha256="0" * 64)
    message = str(info.value)
    part = tmp_path / "blob.bin.part"
    assert "\n" not in message
    assert str(part) in message and "0" * 64 in message and _sha(b"not what was pinned") in message
    assert part.exists() and not (tmp_path / "blob.bin").exists()


def test_unpinned_download_logs_the_computed_sha256(server, monkeypatch, tmp_path, caplog):
    archive = penn_fudan_zip()
    _serve(monkeypatch, server, "penn-fudan", {"PennFudanPed.zip": archive}, pin=False)
    with caplog.at_level("WARNING", logger="personseg.data.download"):
        prepare("penn-fudan", tmp_path)
    assert any(_sha(archive) in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


@pytest.mark.parametrize(
    "archive",
    [
        _zip({"ok.txt": b"x", "../evil.txt": b"x"}),
        _zip({"/tmp/evil.txt": b"x"}),
        _tar({"data/ok.txt": b"x", "data/../../evil.txt": b"x"}),
    ],
    ids=["zip-dotdot", "zip-absolute", "tar-dotdot"],
)
def test_extract_rejects_members_outside_the_target(tmp_path, archive):
    path = tmp_path / "archive"
    path.write_bytes(archive)
    with pytest.raises(UnsafeArchiveError, match="outside"):
        extract(path, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not list((tmp_path / "out").rglob("*.txt"))


def test_extract_rejects_tar_symlinks(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        link = tarfile.TarInfo("data/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    (tmp_path / "a.tar").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract(tmp_path / "a.tar", tmp_path / "out")


# --- Supervisely Person look-alike: <ds>/img/<name> + <ds>/ann/<name>.json -----------------------------
def _sly_bitmap(bits: np.ndarray) -> str:
    """Encoded as Supervisely's Bitmap.data_2_base64: mode-L PNG with transparency=0, zlib, base64."""
    buf = io.BytesIO()
    Image.fromarray(bits.astype(np.uint8)).save(buf, format="PNG", transparency=0)
    return base64.b64encode(zlib.compress(buf.getvalue())).decode()


def test_supervisely_polygons_bitmaps_and_neutral(server, monkeypatch, tmp_path):
    ann = {
        "size": {"height": 8, "width": 10},
        "tags": [],
        "objects": [
            {
                "classTitle": "person_poly",
                "geometryType": "polygon",
                "points": {
                    "exterior": [[1, 1], [4, 1], [4, 4], [1, 4]],
                    "interior": [[[2, 2], [3, 2], [3, 3], [2, 3]]],
                },
            },
            {
                "classTitle": "person_bmp",
                "geometryType": "bitmap",
                "bitmap": {"origin": [6, 5], "data": _sly_bitmap(np.array([[1, 1, 0], [0, 1, 1]]))},
            },
            {
                "classTitle": "neutral",
                "geometryType": "polygon",
                "points": {"exterior": [[0, 6], [2, 6], [2, 7], [0, 7]], "interior": []},
            },
        ],
    }
    top = "Supervisely Person Dataset"
    archive = _tar(
        {
            f"{top}/meta.json": b'{"classes": []}',
            f"{top}/ds1/img/pexels-photo-1.png": _png(np.zeros((8, 10, 3), np.uint8)),
            f"{top}/ds1/ann/pexels-photo-1.png.json": json.dumps(ann).encode(),
        }
    )
    _serve(monkeypatch, server, "supervisely-person", {"SuperviselyPerson.tar": archive})
    assert prepare("supervisely-person", tmp_path) == 1
    expected = np.zeros((8, 10), np.uint8)
    expected[1:5, 1:5] = 255  # polygon vertices are inclusive pixel coordinates
    expected[2:4, 2:4] = 0  # its hole
    expected[5, 6:8] = expected[6, 7:9] = 255  # the bitmap at origin (x=6, y=5)
    np.testing.assert_array_equal(_mask(tmp_path / "masks" / "ds1_pexels-photo-1.png"), expected)
    assert (tmp_path / "images" / "ds1_pexels-photo-1.png").exists()


# --- COCO look-alike: annotations zip + images served one by one (or as val2017.zip) ------------------
def _coco_fixture(server) -> bytes:
    images = []
    for image_id in (1, 2, 3):
        name = f"{image_id:012d}.jpg"
        server.files[f"/val2017/{name}"] = _jpg(8, 6)
        url = server.url(f"val2017/{name}")
        images.append({"id": image_id, "file_name": name, "height": 6, "width": 8, "coco_url": url})
    square = {"segmentation": [[1, 1, 4, 1, 4, 4, 1, 4]], "bbox": [1, 1, 3, 3], "area": 9.0}
    crowd = {"segmentation": {"counts": [12, 12, 24], "size": [6, 8]}, "bbox": [2, 0, 2, 6], "area": 12.0}
    dog = {"segmentation": [[5, 0, 8, 0, 8, 3, 5, 3]], "bbox": [5, 0, 3, 3], "area": 9.0}
    annotations = [
        {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, **square},
        {"id": 11, "image_id": 1, "category_id": 18, "iscrowd": 0, **dog},
        {"id": 12, "image_id": 2, "category_id": 1, "iscrowd": 1, **crowd},
        {"id": 13, "image_id": 3, "category_id": 18, "iscrowd": 0, **dog},
    ]
    categories = [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 18, "name": "dog"}]
    instances = {"images": images, "annotations": annotations, "categories": categories}
    return _zip({"annotations/instances_val2017.json": json.dumps(instances).encode()})


def _coco_expected() -> dict[str, np.ndarray]:
    square = np.zeros((6, 8), np.uint8)
    square[1:4, 1:4] = 255  # COCO polygons are in continuous coordinates: (1,1)-(4,4) covers pixels 1..3
    crowd = np.zeros((6, 8), np.uint8)
    crowd[:, 2:4] = 255  # column-major RLE: 12 off (columns 0-1), 12 on (columns 2-3), 24 off
    return {"000000000001": square, "000000000002": crowd}


def test_coco_with_limit_fetches_only_the_chosen_images(server, monkeypatch, tmp_path):
    pytest.importorskip("pycocotools")
    _serve(monkeypatch, server, "coco-person-val", {"annotations_trainval2017.zip": _coco_fixture(server)})
    assert prepare("coco-person-val", tmp_path, limit=1) == 1
    np.testing.assert_array_equal(_mask(tmp_path / "masks" / "000000000001.png"), _coco_expected()["000000000001"])
    fetched = [path for path, _ in server.requests if path.startswith("/val2017/")]
    assert fetched == ["/val2017/000000000001.jpg"]


def test_coco_full_run_reads_the_image_zip(server, monkeypatch, tmp_path):
    pytest.importorskip("pycocotools")
    _serve(monkeypatch, server, "coco-person-val", {"annotations_trainval2017.zip": _coco_fixture(server)})
    images = _zip({f"val2017/{i:012d}.jpg": _jpg(8, 6) for i in (1, 2, 3)})
    server.files["/val2017.zip"] = images
    local = RemoteFile(server.url("val2017.zip"), "val2017.zip", size=len(images), sha256=_sha(images))
    monkeypatch.setitem(sources._COCO_IMAGES, "val", local)
    assert prepare("coco-person-val", tmp_path) == 2  # the dog-only image is left out
    for stem, expected in _coco_expected().items():
        np.testing.assert_array_equal(_mask(tmp_path / "masks" / f"{stem}.png"), expected)
        assert (tmp_path / "images" / f"{stem}.jpg").exists()
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["000000000001.jpg", "000000000002.jpg"]
    assert not (tmp_path / ".download" / "val2017.zip").exists()


# --- Clothing Co-Parsing look-alike: annotations/pixel-level/NNNN.mat + photos/NNNN.jpg --------------
def test_ccp_labels_merge_into_person(server, monkeypatch, tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    groundtruth = np.zeros((6, 8), np.uint8)
    groundtruth[1:5, 2:6] = 41  # skin
    groundtruth[2:4, 3:5] = 5  # blouse
    top = "clothing-co-parsing-master"

    def mat(**variables) -> bytes:
        buf = io.BytesIO()
        scipy_io.savemat(buf, variables)
        return buf.getvalue()

    archive = _zip(
        {
            f"{top}/annotations/pixel-level/0001.mat": mat(groundtruth=groundtruth),
            f"{top}/annotations/image-level/0002.mat": mat(tags=np.array([[5]])),
            f"{top}/photos/0001.jpg": _jpg(8, 6),
            f"{top}/photos/0002.jpg": _jpg(8, 6),
            f"{top}/label_list.mat": mat(label_list=np.array(["null", "accessories"], dtype=object)),
        }
    )
    _serve(monkeypatch, server, "ccp", {"clothing-co-parsing-master.zip": archive})
    assert prepare("ccp", tmp_path) == 1
    np.testing.assert_array_equal(_mask(tmp_path / "masks" / "ccp_0001.png"), np.where(groundtruth > 0, 255, 0))
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["ccp_0001.jpg"]


# --- entry points --------------------------------------------------------------------------------------
def test_cli_list_and_download(server, monkeypatch, tmp_path, capsys):
    assert cli_main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in sources.SOURCES)
    _serve(monkeypatch, server, "penn-fudan", {"PennFudanPed.zip": penn_fudan_zip()})
    assert cli_main(["data", "download", "penn-fudan", "--root", str(tmp_path)]) == 0
    _check_penn_fudan(tmp_path)


def test_cli_errors_are_one_line(server, monkeypatch, tmp_path, capsys):
    assert cli_main(["data", "download", "no-such-set"]) == 2
    assert capsys.readouterr().err.startswith("personseg data: unknown dataset 'no-such-set'")
    _serve(monkeypatch, server, "penn-fudan", {"PennFudanPed.zip": _zip({"../evil.txt": b"x"})})
    assert cli_main(["data", "download", "penn-fudan", "--root", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("personseg data: ") and "outside" in err


def test_script_default_and_explicit_dataset(server, tmp_path):
    archive = penn_fudan_zip()
    server.files["/PennFudanPed.zip"] = archive
    env = {**os.environ, "PERSONSEG_DATASET_URL_OVERRIDE": server.url("PennFudanPed.zip")}
    script = str(REPO / "scripts" / "download_dataset.py")
    # No arguments: Penn-Fudan straight into ./data (images/ + masks/), as the seed's training expects.
    done = subprocess.run([sys.executable, script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _check_penn_fudan(tmp_path / "data")
    assert _sha(archive) in done.stderr  # unpinned (overridden URL): the computed sha256 is reported
    args = [sys.executable, script, "--dataset", "penn-fudan", "--output", str(tmp_path / "pf")]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _check_penn_fudan(tmp_path / "pf")


def test_unreachable_host_fails_at_once_with_the_offline_hint(monkeypatch, tmp_path, caplog):
    import socket
    import urllib.error

    calls = []

    def no_network(*args, **kwargs):
        calls.append(args)
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(UnreachableError) as info:
        download_file("https://example.invalid/PennFudanPed.zip", tmp_path / "PennFudanPed.zip")
    message = str(info.value)
    assert len(calls) == 1  # not retried as an "interruption"
    assert "cannot reach example.invalid" in message and "--url file://" in message and "--data DIR" in message
    assert "partial file" not in message and not any(tmp_path.iterdir())
    assert "interrupted" not in caplog.text


def test_refused_connection_does_not_promise_a_partial_file(tmp_path):
    import socket

    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/blob.bin"
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path / "blob.bin", attempts=1)
    assert "partial file" not in str(info.value)
    assert not (tmp_path / "blob.bin.part").exists()


def test_a_failed_download_leaves_no_empty_folders(monkeypatch, tmp_path, capsys):
    import socket
    import urllib.error

    def no_network(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    root = tmp_path / "fresh" / "penn"
    assert cli_main(["data", "download", "penn-fudan", "--root", str(root)]) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert not (tmp_path / "fresh").exists()
