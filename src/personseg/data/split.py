"""A fixed train/validation split that never changes between runs or machines.

A stem goes to validation when a hash of ``"<source>/<stem>"`` falls below ``val_fraction``: no file lists to
keep in sync, the same answer everywhere, and adding images later never moves existing ones across the split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def is_val(source: str, stem: str, val_fraction: float) -> bool:
    digest = hashlib.sha1(f"{source}/{stem}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def split_stems(source: str, stems: Iterable[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """``(train_stems, val_stems)``."""
    train, val = [], []
    for stem in stems:
        (val if is_val(source, stem, val_fraction) else train).append(stem)
    return train, val
