#!/usr/bin/env python
"""The seed's training command, kept working: ``python train.py --epochs 5 --batch-size 4``.

Same flags as ``personseg train`` (see ``python train.py --help``); data defaults to ``data/images`` +
``data/masks`` (``python scripts/download_dataset.py`` fetches Penn-Fudan there).
"""

import sys
from pathlib import Path

try:
    import personseg  # noqa: F401
except ImportError:  # running from a fresh clone without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from personseg.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
