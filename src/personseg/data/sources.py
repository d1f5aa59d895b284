"""Public person-segmentation datasets: where to get them and how to turn them into ``images/`` + ``masks/``.

:data:`SOURCES` maps a name to a :class:`DatasetSource` (files with size and checksums, licence, converter);
:func:`prepare` downloads, verifies, unpacks and converts one of them into ``ROOT/images/<stem>.<ext>`` and
``ROOT/masks/<stem>.png`` (8-bit, 0 = background, 255 = person, same size as the image). Downloads and
unpacked archives live in ``ROOT/.download/``; a finished run leaves a marker there so that running it
again does nothing.

Checksums are only ever copied from a published or independently pinned source (noted next to each one);
where none is known the field is None and the download logs the sha256 it computed, ready to be pinned.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import shutil
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from personseg.data.download import download_file, extract, remove_tree

log = logging.getLogger(__name__)

#: (stem, image file or decoded image, boolean person mask HxW) produced by a converter
Pair = tuple[str, "Path | Image.Image", np.ndarray]


class ConversionError(RuntimeError):
    """A downloaded dataset does not have the layout its converter expects, or a reader is missing."""


@dataclass(frozen=True)
class RemoteFile:
    url: str
    filename: str
    size: int | None = None
    """bytes; None where the host does not serve a fixed file (e.g. GitHub's generated archives)"""
    sha256: str | None = None
    md5: str | None = None
    """checked only when no sha256 is pinned"""


@dataclass(frozen=True)
class ConvertJob:
    """What a converter gets: the unpacked downloads (one directory per file) and the run's options."""

    sources: tuple[Path, ...]
    root: Path
    cache: Path
    limit: int | None
    progress: bool
    extra_downloads: list[Path] = field(default_factory=list)

    def fetch(self, remote: RemoteFile) -> Path:
        """Download an extra file into the cache; it is removed with the archives after conversion."""
        path = download_file(
            remote.url,
            self.cache / remote.filename,
            size=remote.size,
            sha256=remote.sha256,
            md5=remote.md5,
            progress=self.progress,
        )
        self.extra_downloads.append(path)
        return path


@dataclass(frozen=True)
class DatasetSource:
    name: str
    description: str
    homepage: str
    licence: str
    files: tuple[RemoteFile, ...]
    convert: Callable[[ConvertJob], Iterable[Pair]]
    pairs: int | None = None
    """number of image/mask pairs a full conversion gives"""


def _find_dir(root: Path, name: str) -> Path:
    found = sorted(p for p in root.rglob(name) if p.is_dir())
    if not found:
        raise ConversionError(f"{root}: no {name}/ directory inside; is this the right archive?")
    return found[0]


# --- Penn-Fudan: PNGImages/<stem>.png + PedMasks/<stem>_mask.png with 0 = background, k = pedestrian k.
def _convert_penn_fudan(job: ConvertJob) -> Iterator[Pair]:
    base = _find_dir(job.sources[0], "PNGImages").parent
    for image in sorted((base / "PNGImages").glob("*.png")):
        mask_path = base / "PedMasks" / f"{image.stem}_mask.png"
        if not mask_path.exists():
            log.warning("%s has no instance mask %s; skipped", image, mask_path.name)
            continue
        with Image.open(mask_path) as m:
            yield image.stem, image, np.asarray(m) > 0


# --- Supervisely Person: <ds>/img/<name> + <ds>/ann/<name>.json, objects are bitmaps or polygons.
def _decode_bitmap(data: str) -> np.ndarray:
    """Supervisely bitmap: base64 of a zlib-compressed PNG whose alpha (or gray value) marks the object."""
    raw = base64.b64decode(data)
    with contextlib.suppress(zlib.error):  # newer exports may skip the zlib layer
        raw = zlib.decompress(raw)
    with Image.open(io.BytesIO(raw)) as im:
        if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
            return np.asarray(im.convert("RGBA"))[..., 3] > 0
        return np.asarray(im.convert("L")) > 0


def _supervisely_object(obj: dict, height: int, width: int) -> np.ndarray:
    import cv2

    canvas = np.zeros((height, width), np.uint8)
    geometry = obj.get("geometryType") or obj.get("type")
    if geometry == "bitmap" or (geometry is None and obj.get("bitmap")):
        bits = _decode_bitmap(obj["bitmap"]["data"])
        x, y = (int(v) for v in obj["bitmap"]["origin"])
        y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + bits.shape[0], height), min(x + bits.shape[1], width)
        if y1 > y0 and x1 > x0:
            canvas[y0:y1, x0:x1] = bits[y0 - y : y1 - y, x0 - x : x1 - x]
    elif geometry in ("polygon", None) and obj.get("points", {}).get("exterior"):
        cv2.fillPoly(canvas, [np.round(obj["points"]["exterior"]).astype(np.int32)], 1)
        for hole in obj["points"].get("interior", []):
            cv2.fillPoly(canvas, [np.round(hole).astype(np.int32)], 0)
    else:
        log.debug("skipping Supervisely geometry %r", geometry)
    return canvas.astype(bool)


def _image_matching(path: Path, size: tuple[int, int]) -> Path | Image.Image | None:
    """``path`` when its pixels are ``size``; its EXIF-rotated version when that is what was annotated."""
    with Image.open(path) as im:
        if im.size == size:
            return path
        rotated = ImageOps.exif_transpose(im)
        if rotated.size == size:
            return rotated
    log.warning("%s is %dx%d but annotated as %dx%d; skipped", path, *im.size, *size)
    return None


def _convert_supervisely(job: ConvertJob) -> Iterator[Pair]:
    ann_dirs = sorted(p for p in job.sources[0].rglob("ann") if p.is_dir() and (p.parent / "img").is_dir())
    if not ann_dirs:
        raise ConversionError(f"{job.sources[0]}: no <dataset>/ann + <dataset>/img folders (the Supervisely layout)")
    for ann_dir in ann_dirs:
        for ann_path in sorted(ann_dir.glob("*.json")):
            ann = json.loads(ann_path.read_text())
            height, width = ann["size"]["height"], ann["size"]["width"]
            mask = np.zeros((height, width), bool)
            # person_poly / person_bmp are people; "neutral" marks unclear regions, which a 0/255 mask
            # cannot express as "ignore", so they stay background.
            for obj in ann.get("objects", []):
                if "person" in obj.get("classTitle", "").lower():
                    mask |= _supervisely_object(obj, height, width)
            image_path = ann_dir.parent / "img" / ann_path.name.removesuffix(".json")
            image = _image_matching(image_path, (width, height)) if image_path.exists() else None
            if image is not None:
                yield f"{ann_dir.parent.name}_{Path(image_path.name).stem}", image, mask


# --- COCO 2017: every `person` annotation of an image (crowd regions included) rasterised into one mask.
_COCO_ANNOTATIONS = RemoteFile(
    "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
    "annotations_trainval2017.zip",
    size=252907541,  # size + sha256: tensorflow/datasets url_checksums/coco.txt; md5: COCO download scripts
    sha256="113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268",
    md5="f4bbac642086de4f52a3fdda2de5fa2c",
)
_COCO_IMAGES = {
    "val": RemoteFile(
        "http://images.cocodataset.org/zips/val2017.zip",
        "val2017.zip",
        size=815585330,
        sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05",
        md5="442b8da7639aecaf257c1dceb8ba8c80",
    ),
    "train": RemoteFile(
        "http://images.cocodataset.org/zips/train2017.zip",
        "train2017.zip",
        size=19336861798,
        sha256="69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929",
        md5="cced6f7f71b7629ddf16f17bbcfab6b2",
    ),
}


def _coco_converter(split: str) -> Callable[[ConvertJob], Iterator[Pair]]:
    def convert(job: ConvertJob) -> Iterator[Pair]:
        try:
            from pycocotools.coco import COCO
        except ImportError:
            raise ConversionError("COCO masks need pycocotools: pip install 'personseg[coco]'") from None
        ann_file = _find_dir(job.sources[0], "annotations") / f"instances_{split}2017.json"
        coco = COCO()
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            coco.dataset = json.loads(ann_file.read_text())
            coco.createIndex()
        person = coco.getCatIds(catNms=["person"])
        images_dir = job.root / "images"
        # With --limit only the chosen images are fetched one by one (no checksums are published for
        # single images); a full run takes the checksummed zip and reads the members it needs from it.
        archive = None if job.limit is not None else zipfile.ZipFile(job.fetch(_COCO_IMAGES[split]))
        with archive or contextlib.nullcontext():
            for image_id in sorted(coco.getImgIds(catIds=person)):
                info = coco.loadImgs(image_id)[0]
                mask = np.zeros((info["height"], info["width"]), bool)
                with warnings.catch_warnings():  # pycocotools' numpy-2 DeprecationWarning, not ours to fix
                    warnings.simplefilter("ignore", DeprecationWarning)
                    for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id, catIds=person, iscrowd=None)):
                        mask |= coco.annToMask(ann).astype(bool)
                dest = images_dir / info["file_name"]
                if archive is None:
                    download_file(info["coco_url"], dest, warn_unpinned=False)
                elif not dest.exists():
                    with archive.open(f"{split}2017/{info['file_name']}") as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                yield Path(info["file_name"]).stem, dest, mask

    return convert


# --- Clothing Co-Parsing: annotations/pixel-level/NNNN.mat holds `groundtruth` (0 = null, 1..58 = clothing,
# skin, hair), photos/NNNN.jpg; every non-background label is part of the person.
def _convert_ccp(job: ConvertJob) -> Iterator[Pair]:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ConversionError(
            "the Clothing Co-Parsing annotations are MATLAB .mat files; reading them needs scipy (pip install scipy)"
        ) from None
    pixel_level = _find_dir(job.sources[0], "pixel-level")
    photos = pixel_level.parent.parent / "photos"
    for mat in sorted(pixel_level.glob("*.mat")):
        image = photos / f"{mat.stem}.jpg"
        if not image.exists():
            log.warning("%s has no photo %s; skipped", mat, image)
            continue
        yield f"ccp_{mat.stem}", image, np.asarray(loadmat(mat)["groundtruth"]) > 0


SOURCES: dict[str, DatasetSource] = {
    "penn-fudan": DatasetSource(
        name="penn-fudan",
        description="Penn-Fudan pedestrians: 170 street photos, 345 people with instance masks",
        homepage="https://www.cis.upenn.edu/~jshi/ped_html/",
        licence="no licence stated by the authors; research use, cite Wang et al., ACCV 2007",
        files=(
            RemoteFile(
                "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",
                "PennFudanPed.zip",
                size=53723336,  # Content-Length served by upenn.edu; md5 as pinned by ContinualAI/avalanche
                md5="5aaa3dee905cef73325923716e38fc6d",
            ),
        ),
        convert=_convert_penn_fudan,
        pairs=170,
    ),
    "supervisely-person": DatasetSource(
        name="supervisely-person",
        description="Supervisely Person: 5711 photos (pexels.com), 6884 people, polygons and bitmaps",
        homepage="https://ecosystem.supervisely.com/projects/persons",
        licence="non-commercial use only (Supervisely Person licence); images under the pexels.com terms",
        # The original archive. Dataset Ninja serves a re-export in the same <ds>/img + <ds>/ann layout
        # (link in github.com/dataset-ninja/supervisely-persons DOWNLOAD.md), usable with --url.
        files=(
            RemoteFile("https://cloud.enterprise.deepsystems.io/s/TK2z5TLYoAPl1w6/download", "SuperviselyPerson.tar"),
        ),
        convert=_convert_supervisely,
        pairs=5711,
    ),
    "coco-person-val": DatasetSource(
        name="coco-person-val",
        description="COCO 2017 val photos with people; all person polygons + crowd regions (778 MiB zip)",
        homepage="https://cocodataset.org/",
        licence="annotations CC BY 4.0; images under their Flickr licences (see each image's `license`)",
        files=(_COCO_ANNOTATIONS,),
        convert=_coco_converter("val"),
        pairs=2693,
    ),
    "coco-person-train": DatasetSource(
        name="coco-person-train",
        description="COCO 2017 train photos with people, as coco-person-val (18 GiB zip; try --limit)",
        homepage="https://cocodataset.org/",
        licence="annotations CC BY 4.0; images under their Flickr licences (see each image's `license`)",
        files=(_COCO_ANNOTATIONS,),
        convert=_coco_converter("train"),
        pairs=64115,
    ),
    "ccp": DatasetSource(
        name="ccp",
        description="Clothing Co-Parsing: 1004 full-body street-fashion photos, all labels merged to person",
        homepage="https://github.com/bearpaw/clothing-co-parsing",
        licence="Apache-2.0 (repository); photos are third-party, research use; cite Yang et al., CVPR 2014",
        # GitHub builds this zip on request, so neither its size nor its bytes are fixed.
        files=(
            RemoteFile(
                "https://github.com/bearpaw/clothing-co-parsing/archive/refs/heads/master.zip",
                "clothing-co-parsing-master.zip",
            ),
        ),
        convert=_convert_ccp,
        pairs=1004,
    ),
}


def get_source(name: str) -> DatasetSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; choose from: {', '.join(SOURCES)}") from None


def _write_pairs(pairs: Iterable[Pair], root: Path, limit: int | None) -> int:
    images, masks = root / "images", root / "masks"
    written = 0
    for stem, image, mask in pairs:
        if isinstance(image, Image.Image):
            size, dest = image.size, images / f"{stem}.png"
        else:
            with Image.open(image) as im:
                size = im.size
            dest = images / f"{stem}{image.suffix.lower()}"
        if mask.shape != (size[1], size[0]):
            log.warning("%s: mask is %s but the image is %dx%d; skipped", stem, mask.shape[::-1], *size)
            if not isinstance(image, Image.Image) and image.resolve() == dest.resolve():
                image.unlink()  # fetched straight into images/ (COCO); leave no image without a mask
            continue
        if isinstance(image, Image.Image):
            image.save(dest)
        elif image.resolve() != dest.resolve():
            shutil.copyfile(image, dest)
        Image.fromarray(mask.astype(np.uint8) * 255).save(masks / f"{stem}.png")
        written += 1
        if limit is not None and written >= limit:
            break
    return written


def prepare(
    name: str,
    root: str | Path,
    *,
    limit: int | None = None,
    keep_archives: bool = False,
    progress: bool = False,
    url: str | None = None,
) -> int:
    """Download dataset ``name`` and write its pairs under ``root``; returns the number of pairs.

    ``limit`` converts at most that many pairs (for COCO it also fetches only those images). ``url``
    replaces the first file's URL (a mirror or a local copy); the pinned size and checksums describe the
    original file, so they are not applied to it and the computed sha256 is logged instead.
    """
    source = get_source(name)
    root = Path(root)
    cache = root / ".download"
    marker = cache / f"{name}.done.json"
    done = json.loads(marker.read_text()) if marker.exists() else {}
    if done.get("limit", -1) == limit and (root / "masks").is_dir():
        log.info("%s is already in %s (%d pairs); nothing to do", name, root, done["pairs"])
        return done["pairs"]
    files = source.files
    if url is not None:
        log.warning(
            "%s: fetching %s from %s; its pinned size and checksum are not applied",
            name,
            files[0].filename,
            url,
        )
        files = (replace(files[0], url=url, size=None, sha256=None, md5=None), *files[1:])
    archives = [
        download_file(f.url, cache / f.filename, size=f.size, sha256=f.sha256, md5=f.md5, progress=progress)
        for f in files
    ]
    unpacked = tuple(extract(a, cache / f"{a.name}.d") for a in archives)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    job = ConvertJob(sources=unpacked, root=root, cache=cache, limit=limit, progress=progress)
    converted = source.convert(job)
    pairs: Iterable[Pair] = converted
    if progress:
        with contextlib.suppress(ImportError):
            from tqdm.auto import tqdm

            pairs = tqdm(converted, total=limit or source.pairs, unit="pair", desc=f"converting {name}")
    try:
        count = _write_pairs(pairs, root, limit)
    finally:
        for it in (pairs, converted):  # stops the converter early (--limit) and closes what it holds open
            if hasattr(it, "close"):
                it.close()
    marker.write_text(json.dumps({"dataset": name, "limit": limit, "pairs": count}))
    for directory in unpacked:
        remove_tree(directory)
    if not keep_archives:
        for path in [*archives, *job.extra_downloads]:
            path.unlink(missing_ok=True)
    log.info("%s: %d pairs in %s/images and %s/masks", name, count, root, root)
    return count
