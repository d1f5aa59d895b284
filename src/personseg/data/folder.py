"""Paired image/mask folders: ``ROOT/images/<stem>.<ext>`` + ``ROOT/masks/<stem>.png`` (the seed's layout).

Construction validates the whole folder and reports every problem in one error (or skips the bad pairs with a
warning when ``skip_invalid=True``): images without masks, masks without images, size mismatches, unreadable
files and masks that are not single-channel. Masks may be 0/1 or 0/255 (binary) or soft alpha (kept soft).

An optional ``ROOT/ignore/<stem>.png`` (255 = label unknown, e.g. CamVid's cyclists) marks pixels that losses and
metrics leave out: they are loaded as ``IGNORE`` (-1) in the mask.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

IGNORE = -1.0  # mask value of pixels whose label is unknown (from ignore/ masks): no loss, no metric

#: Extensions a dataset or calibration folder is scanned for.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class DatasetError(ValueError):
    """A dataset folder has problems; the message lists all of them."""


@dataclass(frozen=True)
class Pair:
    image: Path
    mask: Path
    ignore: Path | None = None

    @property
    def stem(self) -> str:
        return self.image.stem


def _check_pair(pair: Pair) -> str | None:
    """One line describing what is wrong with ``pair``, or None."""
    try:
        with Image.open(pair.image) as im:
            im.load()  # a full decode: verify() misses truncated JPEG data
            image_size = im.size
    except Exception as exc:
        return f"{pair.image}: unreadable image ({type(exc).__name__}: {exc})"
    try:
        with Image.open(pair.mask) as m:
            m.load()
            mask_size, mode, bands = m.size, m.mode, len(m.getbands())
    except Exception as exc:
        return f"{pair.mask}: unreadable mask ({type(exc).__name__}: {exc})"
    if bands != 1 and mode != "P":
        return f"{pair.mask}: mask has {bands} channels ({mode}); expected a single-channel (L) PNG"
    if mask_size != image_size:
        return f"{pair.mask}: mask is {mask_size[0]}x{mask_size[1]} but the image is {image_size[0]}x{image_size[1]}"
    if pair.ignore is not None:
        try:
            with Image.open(pair.ignore) as ig:
                ig.load()
                ignore_size = ig.size
        except Exception as exc:
            return f"{pair.ignore}: unreadable ignore mask ({type(exc).__name__}: {exc})"
        if ignore_size != image_size:
            w, h = ignore_size
            return f"{pair.ignore}: ignore mask is {w}x{h} but the image is {image_size[0]}x{image_size[1]}"
    return None


def scan_folder(root: str | Path, check: bool = True) -> tuple[list[Pair], list[str]]:
    """All (image, mask) pairs under ``root`` and a list of problems found (one line each)."""
    root = Path(root)
    images_dir, masks_dir = root / "images", root / "masks"
    problems: list[str] = []
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DatasetError(f"{root}: expected the folders images/ and masks/ inside it")
    images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    masks = {p.stem: p for p in sorted(masks_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    for stem in sorted(images.keys() - masks.keys()):
        problems.append(f"{images[stem]}: no mask (expected {masks_dir / (stem + '.png')})")
    for stem in sorted(masks.keys() - images.keys()):
        problems.append(f"{masks[stem]}: mask without an image in {images_dir}")
    ignore_dir = root / "ignore"
    ignores = {}
    if ignore_dir.is_dir():
        ignores = {p.stem: p for p in sorted(ignore_dir.iterdir()) if p.suffix.lower() == ".png"}
    pairs = [Pair(images[s], masks[s], ignores.get(s)) for s in sorted(images.keys() & masks.keys())]
    if check:
        good = []
        for pair in pairs:
            problem = _check_pair(pair)
            if problem:
                problems.append(problem)
            else:
                good.append(pair)
        pairs = good
    return pairs, problems


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB in the file's stored pixel order (no EXIF rotation), so it lines up with its mask.

    Photos from users go through :func:`personseg.inference.io.read_image` instead (upright, size limits)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_mask(path: Path) -> np.ndarray:
    """HxW float32 in [0, 1]: 0/1 and 0/255 masks become 0/1, other 8-bit values are soft alpha.

    Palette (P) masks are read by index, as VOC-style label maps are: any index > 0 is person."""
    with Image.open(path) as m:
        if m.mode == "P":
            return (np.asarray(m) > 0).astype(np.float32)
        arr = np.asarray(m.convert("L") if m.mode not in ("L", "1") else m)
    arr = arr.astype(np.float32)
    return arr if arr.max() <= 1.0 else arr / 255.0


def _downscale(image: np.ndarray, mask: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image, mask
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Area-averaging would blend IGNORE (-1) into labels: such masks are resampled nearest.
    mask_interp = cv2.INTER_NEAREST if (mask < 0).any() else cv2.INTER_AREA
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.resize(mask, size, interpolation=mask_interp)


class PairedFolder:
    """A validated folder of image/mask pairs; ``folder[i]`` is ``(rgb uint8 HxWx3, mask float32 HxW)``.

    ``stems`` restricts it to a subset (e.g. a split). ``cache_max_side`` loads every pair into memory once,
    downscaled so the long side is at most that many pixels: augmentation then never decodes JPEGs.
    ``mask_fix(rgb, mask) -> mask`` mends known label errors as pairs are loaded (see ``data.repair``).
    ``mattes``: a folder of ``<stem>.png`` alpha mattes of these photos whose values replace each label's outline
    band where the matte agrees with the label near the person (:func:`personseg.data.mattes.boundary_target`);
    ``matte_counts`` tallies what happened to the labels loaded so far (taken, rejected, missing).
    """

    def __init__(
        self,
        root: str | Path,
        stems: Sequence[str] | None = None,
        skip_invalid: bool = False,
        check: bool = True,
        cache_max_side: int | None = None,
        mask_fix: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        mattes: str | Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.mask_fix = mask_fix
        self.mattes = None if mattes is None else Path(mattes)
        if self.mattes is not None and not self.mattes.is_dir():
            raise DatasetError(f"{self.mattes}: no such matte folder (make it with scripts/make_mattes.py)")
        self.matte_counts = {"taken": 0, "rejected": 0, "missing": 0}
        pairs, problems = scan_folder(self.root, check=check)
        if problems and not skip_invalid:
            listing = "\n  ".join(problems[:50])
            more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
            raise DatasetError(
                f"{self.root}: {len(problems)} problem(s) in the dataset (pass skip_invalid=True / "
                f"--skip-invalid to skip them):\n  {listing}{more}"
            )
        for problem in problems:
            log.warning("skipping: %s", problem)
        if stems is not None:
            wanted = set(stems)
            pairs = [p for p in pairs if p.stem in wanted]
        if not pairs:
            raise DatasetError(f"{self.root}: no usable image/mask pairs")
        self.pairs = pairs
        self.problems = problems
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None
        if cache_max_side:
            self._cache = [_downscale(*self._load(p), cache_max_side) for p in pairs]

    def _load(self, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
        rgb, mask = read_rgb(pair.image), read_mask(pair.mask)
        if self.mask_fix is not None:
            mask = self.mask_fix(rgb, mask)
        if self.mattes is not None:
            mask = self._matte_boundary(pair, mask)
        if pair.ignore is not None:
            with Image.open(pair.ignore) as ig:
                mask = np.where(np.asarray(ig.convert("L")) > 127, np.float32(IGNORE), mask)
        return rgb, mask

    def _matte_boundary(self, pair: Pair, mask: np.ndarray) -> np.ndarray:
        from personseg.data.mattes import boundary_target, read_matte

        path = self.mattes / f"{pair.stem}.png"
        if not path.is_file():
            self.matte_counts["missing"] += 1
            return mask
        try:
            target = boundary_target(mask, read_matte(path))
        except ValueError as exc:
            raise DatasetError(f"{path}: {exc}") from None
        self.matte_counts["rejected" if target is None else "taken"] += 1
        return mask if target is None else target

    @property
    def stems(self) -> list[str]:
        return [p.stem for p in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None:
            return self._cache[index]
        return self._load(self.pairs[index])
