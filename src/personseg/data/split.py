"""A fixed train/validation split that never changes between runs or machines.

A stem goes to validation when a hash of ``"<source>/<stem>"`` falls below ``val_fraction``: no file lists to
keep in sync, the same answer everywhere, and adding images later never moves existing ones across the split.

Video frames are near-duplicates of their neighbours, so a hash split by frame leaks validation into training.
Such sources are split by patterns instead (:func:`split_by_patterns`): ``"davis_people/lucia_*"`` puts a whole
sequence in validation, ``"camvid/camvid_0016E5_*[13579]"`` keeps a dataset's own given split.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Sequence


def is_val(source: str, stem: str, val_fraction: float) -> bool:
    digest = hashlib.sha1(f"{source}/{stem}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def split_stems(source: str, stems: Iterable[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """``(train_stems, val_stems)``."""
    train, val = [], []
    for stem in stems:
        (val if is_val(source, stem, val_fraction) else train).append(stem)
    return train, val


def check_patterns(patterns: Sequence[str]) -> None:
    """ValueError unless every pattern has the ``SOURCE/STEM_GLOB`` shape."""
    for pattern in patterns:
        name, sep, glob = pattern.partition("/")
        if not sep or not glob:
            raise ValueError(f"validation pattern {pattern!r}: expected SOURCE/STEM_GLOB, e.g. davis_people/lucia_*")


def patterns_for(source: str, patterns: Sequence[str]) -> list[str]:
    """The ``SOURCE/STEM_GLOB`` patterns that name ``source``, as stem globs."""
    check_patterns(patterns)
    return [glob for name, _, glob in (p.partition("/") for p in patterns) if name == source]


def split_by_patterns(stems: Iterable[str], globs: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(train_stems, val_stems)``: a stem matching any of ``globs`` (fnmatch, case-sensitive) is validation."""
    train, val = [], []
    for stem in stems:
        (val if any(fnmatch.fnmatchcase(stem, g) for g in globs) else train).append(stem)
    return train, val


def split_source(
    source: str, stems: Sequence[str], val_fraction: float, patterns: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """``(train_stems, val_stems)`` of one source: by the patterns that name it (whole sequences, a given
    split), else by the fixed hash split. The one rule training and evaluation share."""
    globs = patterns_for(source, patterns)
    if globs:
        return split_by_patterns(stems, globs)
    return split_stems(source, stems, val_fraction)
