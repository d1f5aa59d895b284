"""``personseg remove``: remove or replace the background of photos, one file or thousands.

Inputs are files, folders (``--recursive``), globs or ``-`` (stdin); outputs go to a folder (one file per
requested kind, subfolders mirrored) or ``-`` (stdout, one PNG). A bad input is reported and skipped, the
batch goes on; the exit code is 0 only if every input succeeded.
"""

from __future__ import annotations

import argparse
import errno
import glob
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from personseg.cli import options
from personseg.cli.folders import folders_to_create, remove_if_empty

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
DESCRIPTION = (
    "Remove or replace the background of photos. Inputs: files, folders (-r for subfolders), globs, or - "
    "for stdin. Outputs: one file per kind in the output folder (subfolders mirrored), or one PNG on stdout "
    "with -o -. Bad inputs are reported and skipped; the exit code is 0 only if every input succeeded."
)


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=DESCRIPTION)
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders, globs, or - for stdin")
    parser.add_argument("--image", action="append", default=[], metavar="PATH", help="an input (same as INPUT)")
    parser.add_argument("-o", "--output", default="results", help="output folder, or - for stdout (default: results/)")
    parser.add_argument("-r", "--recursive", action="store_true", help="include images in subfolders of folders")
    parser.add_argument(
        "--outputs",
        nargs="+",
        default=None,
        metavar="KIND",
        help=f"what to write per image, from {', '.join(OUTPUT_KINDS)} (default: {' '.join(DEFAULT_OUTPUTS)}, "
        "plus replaced with a --bg-* option; with -o - one kind, default cutout)",
    )
    parser.add_argument("--skip-existing", action="store_true", help="skip images whose outputs all exist")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no INFO messages")
    options.add_model_option(parser)
    options.add_provider_option(parser)
    options.add_device_option(parser)
    options.add_threads_option(parser)
    options.add_max_pixels_option(parser)
    options.add_max_memory_option(parser)
    options.add_photo_options(parser)
    parser.set_defaults(func=run)


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


def render_all(seg, kinds, background) -> dict:
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


def _say(message: object) -> None:
    print(f"personseg remove: {' '.join(str(message).split())}", file=sys.stderr)


def _fail(message: object) -> int:
    """A usage or setup error, found before any image was processed."""
    _say(message)
    return 2


def _requested_kinds(args: argparse.Namespace, to_stdout: bool, replacing: bool) -> list[str]:
    if args.outputs is None:
        if to_stdout:
            return ["replaced" if replacing else "cutout"]
        return list(DEFAULT_OUTPUTS) + (["replaced"] if replacing else [])
    kinds = list(dict.fromkeys(k for item in args.outputs for k in item.split(",") if k))
    bad = [k for k in kinds if k not in OUTPUT_KINDS]
    if bad:
        raise ValueError(f"--outputs: unknown kind {', '.join(bad)}; choose from {', '.join(OUTPUT_KINDS)}")
    if "replaced" in kinds and not replacing:
        raise ValueError("--outputs replaced needs --bg-color, --bg-image or --bg-blur")
    if to_stdout and len(kinds) != 1:
        raise ValueError("-o - writes one image to stdout: pick one kind with --outputs")
    return kinds


def _check_output_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".personseg-write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(f"cannot write to the output folder {folder}: {reason}") from None


# What can go wrong with one image; the batch reports it and goes on. ImageReadError is a ValueError.
IMAGE_ERRORS = (OSError, ValueError, RuntimeError, MemoryError, ImportError)


def run(args: argparse.Namespace) -> int:
    from personseg.inference.io import atomic_write_files

    specs = list(args.image) + list(args.inputs)
    if not specs:
        return _fail("no input: give image files, folders, globs or - for stdin")
    to_stdout = args.output == STDIN
    try:
        remove_options = options.remove_options_from_args(args)
        background = options.background_from_args(args)
        kinds = _requested_kinds(args, to_stdout, background.kind is not None)
    except ValueError as exc:
        return _fail(exc)
    if specs.count(STDIN) > 1:
        return _fail("- (stdin) can be given only once")
    folder = None if to_stdout else Path(args.output)
    jobs, problems = collect_inputs(specs, args.recursive, exclude=folder.resolve() if folder else None)
    if STDIN in specs and sys.stdin.isatty():
        return _fail("- reads an image from stdin, but stdin is a terminal: pipe an image in")
    if to_stdout and sys.stdout.isatty():
        return _fail("-o - writes a binary PNG to stdout, but stdout is a terminal: redirect it (> out.png) or pipe it")
    if to_stdout and len(jobs) + len(problems) != 1:
        return _fail(f"-o - writes one image to stdout, but {len(jobs) + len(problems)} inputs were given")
    # Everything that can fail for the whole batch is checked before the first image is touched.
    created = folders_to_create(folder) if folder is not None else []
    try:
        if folder is not None:
            _check_output_folder(folder)
        background = background.loaded(args.max_pixels, args.max_memory)  # read once for the whole batch
        model = options.load_model_from_args(args)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        return _fail(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)

    def outputs(job: Job, extensions: dict[str, str]) -> dict[str, bytes]:
        """Every requested kind of ``job``, encoded: all in memory before anything is written."""
        from personseg.inference.io import encode_image
        from personseg.inference.remove import segment

        source = sys.stdin.buffer.read() if job.source == STDIN else job.source
        seg = segment(
            source, model, remove_options, max_pixels=args.max_pixels, name=job.name, max_memory=args.max_memory
        )
        images = render_all(seg, extensions, background)
        return {kind: encode_image(images[kind], ext) for kind, ext in extensions.items()}

    if to_stdout:
        if problems:
            _say(problems[0])
            return 1
        try:
            data = outputs(jobs[0], {kinds[0]: ".png"})[kinds[0]]
        except IMAGE_ERRORS as exc:
            _say(_reason(exc, jobs[0]))
            return 1
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0

    done = skipped = 0
    failures = list(problems)
    for job in _progress(jobs, args.quiet):
        targets = output_paths(job, kinds, folder, background.see_through)
        if args.skip_existing and job.source != STDIN and all(p.exists() for p in targets.values()):
            skipped += 1
            continue
        try:
            # All of an image's outputs or none: a full disk half-way leaves no partial set behind.
            encoded = outputs(job, {k: p.suffix for k, p in targets.items()})
            atomic_write_files({targets[kind]: data for kind, data in encoded.items()})
            done += 1
        except IMAGE_ERRORS as exc:
            failures.append(_reason(exc, job))
            log.debug("failure on %s", job.name, exc_info=True)

    summary = f"personseg remove: done {done}, failed {len(failures)}"
    if skipped:
        summary += f", skipped {skipped} (outputs exist)"
    if remove_if_empty(created):  # a run that wrote nothing leaves no empty folders behind
        print(f"{summary}; nothing written", file=sys.stderr)
    else:
        print(f"{summary}; outputs in {folder}/", file=sys.stderr)
    for line in failures:
        print(f"  failed: {line}", file=sys.stderr)
    return 0 if not failures else 1


def _reason(exc: Exception, job: Job) -> str:
    """One line naming the input: read errors already do, others get the input's name and the error type."""
    from personseg.inference.io import ImageReadError

    if isinstance(exc, ImageReadError):
        return str(exc)
    return f"{job.name}: {type(exc).__name__}: {' '.join(str(exc).split())}"


def _progress(jobs: list[Job], quiet: bool):
    if quiet or len(jobs) < 2:
        return jobs
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with personseg[train]; without it there is just no bar
        return jobs
    # disable=None: no bar when stderr is not a terminal (logs, CI), so it never pollutes them.
    return tqdm(jobs, desc="personseg remove", unit="image", file=sys.stderr, disable=None)
