"""How much memory one image may cost, judged from its header before anything is decoded.

A pixel limit alone does not bound the work: an 87 KB PNG can claim 9500 x 9500 pixels, and processing it at
full size costs ~30 bytes per pixel (float alpha, guided-filter coefficients, the cut-out, the PNG encoder's
copy). So every image gets a working-memory budget (``max_memory``): the image is processed at the largest
size whose estimated peak fits, decoding a large JPEG already reduced (Pillow's ``draft``: 1/2, 1/4, 1/8 in
the DCT), other formats decoded whole and reduced at once. An image whose decoding alone cannot fit is refused.

The estimate is ``WORK_BYTES_PER_PIXEL`` x the working size for the pipeline, and the decoded bitmap plus the
reduced copy for the decoding phase; the two phases do not overlap (the bitmap is freed before inference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Working memory one image may use by default (decoding, inference, refinement and every output): 1.5 GiB.
DEFAULT_MAX_MEMORY = 1536 * 2**20
#: Peak bytes per pixel of the working size that ``segment`` and all its outputs need (mask, cut-out, comparison,
#: replaced background, PNG encoding): 20 measured on photos at 6-24 MP, 25 on a blank image whose alpha is soft
#: everywhere (docs/serve.md), plus a margin. A fixed ~100 MB (the model, ONNX Runtime's arena) comes on top.
WORK_BYTES_PER_PIXEL = 28
#: Bytes per pixel of the decoded PIL image and of the uint8 RGB array made from it.
_CONVERT_BYTES_PER_PIXEL = 4 + 3


def bitmap_bytes_per_pixel(mode: str) -> int:
    """What Pillow stores per pixel in ``mode`` (RGB is padded to 4 bytes; 1-bit images use a byte)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


@dataclass(frozen=True)
class Plan:
    """Where an image of ``size`` is decoded and processed under a budget."""

    size: tuple[int, int]
    """The (width, height) it arrives in."""
    work_size: tuple[int, int]
    """The (width, height) it is processed (and output) at; ``size`` unless it is reduced."""
    draft_scale: int
    """JPEG only: decode at 1/``draft_scale`` (1, 2, 4 or 8) before reducing to ``work_size``."""
    peak_bytes: int
    """Estimated peak of decoding and processing."""
    fits: bool
    """False when even decoding (at the smallest draft scale) exceeds the budget: refuse the image."""

    @property
    def reduced(self) -> bool:
        return self.work_size != self.size


def plan(size: tuple[int, int], mode: str, max_memory: int | None, jpeg: bool = False) -> Plan:
    """The working size of an image of ``size`` and Pillow ``mode`` under ``max_memory`` bytes (None: no budget).

    ``jpeg``: the decoder can scale by 1/2, 1/4 or 1/8 while decoding (``Image.draft``).
    """
    w, h = size
    full = w * h
    if max_memory is None or _peak(mode, full, full) <= max_memory:
        return Plan(size, size, 1, _peak(mode, full, full), True)
    scale = math.sqrt(max_memory / WORK_BYTES_PER_PIXEL / full)
    work = (max(1, math.floor(w * scale)), max(1, math.floor(h * scale)))
    draft = 1
    if jpeg:  # the largest DCT reduction whose result is still at least the working size
        while draft < 8 and math.ceil(w / (2 * draft)) >= work[0] and math.ceil(h / (2 * draft)) >= work[1]:
            draft *= 2
    decoded = math.ceil(w / draft) * math.ceil(h / draft)
    peak = _peak(mode, decoded, work[0] * work[1])
    return Plan(size, work, draft, peak, peak <= max_memory)


def _peak(mode: str, decoded: int, work: int) -> int:
    """The larger of the decoding phase (the decoded bitmap, a converted copy for palette / 1-bit images, the
    reduced bitmap and its RGB array) and the processing phase."""
    convert = 4 if mode in ("1", "P") else 0
    decoding = decoded * (bitmap_bytes_per_pixel(mode) + convert) + work * _CONVERT_BYTES_PER_PIXEL
    return max(decoding, work * WORK_BYTES_PER_PIXEL)


def describe(nbytes: float) -> str:
    """``1.5 GiB`` / ``640 MiB``: how budgets and estimates are written in messages."""
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.1f} GiB"
    return f"{nbytes / 2**20:.0f} MiB"


def parse_bytes(text: str) -> int | None:
    """``1.5G``, ``512M``, ``800000000`` -> bytes; ``none`` / ``off`` / ``0`` -> None (no budget)."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    if value in ("0", "none", "off", ""):
        return None
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    factor = units.get(value[-1], 1)
    try:
        number = float(value[:-1] if value[-1] in units else value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{text!r} is not a memory size > 0: use a size like 1.5G or 512M, or 'none' for no budget")
    return int(number * factor)
