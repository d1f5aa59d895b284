"""Many photos, one at a time: which files are inputs, where each one's outputs go, and :class:`BatchRemover`,
which segments one input and writes all its outputs or none.

Shared by ``personseg remove`` (one process) and :mod:`personseg.distributed` (Ray actors), so a cluster
writes exactly what the single-machine path writes.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from personseg.inference.budget import DEFAULT_MAX_MEMORY
from personseg.inference.io import DEFAULT_MAX_PIXELS, ImageReadError, atomic_write_files, encode_image
from personseg.inference.options import Background, RemoveOptions
from personseg.inference.remove import Segmentation, segment

log = logging.getLogger(__name__)

OUTPUT_KINDS = ("original", "mask", "cutout", "comparison", "replaced")
DEFAULT_OUTPUTS = ("original", "mask", "cutout", "comparison")
#: Extensions a folder is scanned for: raster formats Pillow reads itself, as far as this Pillow build has them
#: (see :func:`image_extensions`). EPS / PS are left out: Pillow would run Ghostscript on them.
IMAGE_EXTENSION_CANDIDATES = (
    ".jpg .jpeg .jpe .jfif .png .apng .bmp .dib .webp .tif .tiff .gif .ppm .pgm .pbm .pnm .avif .jp2 .j2k .jpx "
    ".jpf .j2c .ico .icns .cur .tga .qoi .psd .pcx .dds .sgi .xbm .xpm".split()
)
STDIN = "-"


@dataclass
class Job:
    """One input and where its outputs go (``stem`` + ``_<kind>.<ext>``, relative to the output folder)."""

    source: Path | str
    stem: Path

    @property
    def name(self) -> str:
        return "<stdin>" if self.source == STDIN else str(self.source)


def image_extensions() -> set[str]:
    """The extensions of :data:`IMAGE_EXTENSION_CANDIDATES` that this Pillow can open (AVIF, JPEG 2000 ...)."""
    from PIL import Image

    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return {ext for ext in IMAGE_EXTENSION_CANDIDATES if ext in readable} | {".jpg", ".jpeg", ".png"}


def _unusable(path: Path) -> str | None:
    """Why ``path`` (found in a folder or by a glob) cannot be an input, or None if it is a regular file."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if path.is_symlink():
            return "a symbolic link to nothing"
        return exc.strerror or str(exc)
    if path.is_dir():
        return "a directory, not an image"
    if not path.is_file():
        return "not a regular file"
    return None


def _inside(path: Path, folder: Path | None) -> bool:
    try:
        return folder is not None and path.resolve().is_relative_to(folder)
    except (OSError, RuntimeError):  # a link loop: reported by _unusable
        return False


def collect_inputs(specs: list[str], recursive: bool, exclude: Path | None = None) -> tuple[list[Job], list[str]]:
    """Expand files, folders and globs into jobs; also return one line per input that could not be used.

    In a folder, files are chosen by extension (:func:`image_extensions`); broken links and link loops named
    like images are reported, and so are directories named like images when not recursing (``-r`` would take
    their contents). Other files are skipped, counted in one INFO line per folder.
    """
    jobs: list[Job] = []
    problems: list[str] = []
    owner: dict[Path, str] = {}  # output stem -> the input that claimed it
    seen: set[Path] = set()
    extensions = image_extensions()

    def add(source: Path | str, stem: Path) -> None:
        if source != STDIN:
            key = Path(source).resolve()
            if key in seen:
                return
            seen.add(key)
        job = Job(source, stem)
        if stem in owner:
            problems.append(f"{job.name}: its outputs would overwrite those of {owner[stem]}; process it separately")
            return
        owner[stem] = job.name
        jobs.append(job)

    def scan(folder: Path) -> list[Path]:
        files, others = [], []
        for f in sorted(folder.rglob("*") if recursive else folder.glob("*")):
            if f.name.startswith(".") or _inside(f, exclude):
                continue  # hidden files, and an output folder inside the input folder: its results are not inputs
            if f.suffix.lower() not in extensions:
                if f.is_file():
                    others.append(f.name)
                continue
            reason = _unusable(f)
            if reason is None:
                files.append(f)
            elif not (recursive and reason.startswith("a directory")):
                problems.append(f"{f}: {reason}, skipped")
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            log.info("%s: skipped %d file(s) without an image extension (%s)", folder, len(others), shown)
        return files

    for spec in specs:
        path = Path(spec)
        if spec == STDIN:
            add(STDIN, Path("stdin"))
        elif path.is_dir():
            files = scan(path)
            if not files:
                problems.append(f"{spec}: no images in this folder" + ("" if recursive else " (try --recursive)"))
            for f in files:
                add(f, f.relative_to(path).with_suffix(""))
        elif path.exists():
            add(path, Path(path.stem))
        elif path.is_symlink():
            problems.append(f"{spec}: {_unusable(path)}")
        elif glob.has_magic(spec):
            matches = []
            for m in sorted(Path(m) for m in glob.glob(spec, recursive=True)):
                reason = _unusable(m)
                if reason is None:
                    matches.append(m)
                elif not reason.startswith("a directory"):
                    problems.append(f"{m}: {reason}, skipped")
            if not matches:
                problems.append(f"{spec}: no file matches")
            for f in matches:
                add(f, Path(f.stem))
        else:
            problems.append(f"{spec}: no such file or folder")
    return jobs, problems


def output_paths(job: Job, kinds: list[str], folder: Path, see_through: bool = False) -> dict[str, Path]:
    """Where each output kind of ``job`` is written (``see_through``: the new background keeps an alpha)."""
    photo_ext = ".jpg" if str(job.source).lower().endswith((".jpg", ".jpeg")) else ".png"
    ext = {
        "original": photo_ext,
        "mask": ".png",
        "cutout": ".png",
        "comparison": ".jpg",
        "replaced": ".png" if see_through else ".jpg",
    }
    return {k: folder / job.stem.parent / f"{job.stem.name}_{k}{ext[k]}" for k in kinds}


def render_all(seg: Segmentation, kinds, background: Background) -> dict:
    """The uint8 array of each output kind. With a new ``background`` the comparison shows it (the replaced
    image, made once for both)."""
    replaced = None
    if background.kind is not None and {"comparison", "replaced"} & set(kinds):
        replaced = seg.replaced(background)
    makers = {
        "original": lambda: seg.image,
        "mask": seg.mask,
        "cutout": seg.cutout,
        "comparison": lambda: seg.comparison(replaced),
        "replaced": lambda: replaced,
    }
    return {kind: makers[kind]() for kind in kinds}


# What can go wrong with one image; the batch reports it and goes on. ImageReadError is a ValueError.
IMAGE_ERRORS = (OSError, ValueError, RuntimeError, MemoryError, ImportError)


def failure_reason(exc: Exception, job: Job) -> str:
    """One line naming the input: read errors already do, others get the input's name and the error type."""

    if isinstance(exc, ImageReadError):
        return str(exc)
    return f"{job.name}: {type(exc).__name__}: {' '.join(str(exc).split())}"


@dataclass
class BatchRemover:
    """One image in, all its requested outputs written (atomically: all or none). ``model``: a loaded model."""

    model: object
    folder: Path
    kinds: list[str]
    options: RemoveOptions = field(default_factory=RemoveOptions)
    background: Background = field(default_factory=Background)
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_memory: int | None = DEFAULT_MAX_MEMORY

    def __post_init__(self) -> None:
        self.background = self.background.loaded(self.max_pixels, self.max_memory)  # read once for the batch

    def targets(self, job: Job) -> dict[str, Path]:
        return output_paths(job, self.kinds, self.folder, self.background.see_through)

    def done(self, job: Job) -> bool:
        """Every output of ``job`` exists (complete: outputs are only ever renamed into place)."""
        return job.source != STDIN and all(p.exists() for p in self.targets(job).values())

    def encode(self, job: Job, source: object, extensions: dict[str, str]) -> dict[str, bytes]:
        """Every requested kind of ``job``, encoded: all in memory before anything is written."""
        seg = segment(
            source, self.model, self.options, max_pixels=self.max_pixels, name=job.name, max_memory=self.max_memory
        )
        images = render_all(seg, extensions, self.background)
        return {kind: encode_image(images[kind], ext) for kind, ext in extensions.items()}

    def process(self, job: Job, source: object = None) -> None:
        """Segment ``job`` (``source``: its bytes, when not read from ``job.source``) and write its outputs."""
        targets = self.targets(job)
        encoded = self.encode(job, job.source if source is None else source, {k: p.suffix for k, p in targets.items()})
        atomic_write_files({targets[kind]: data for kind, data in encoded.items()})
