#!/usr/bin/env python
"""The seed's entry point, kept working: ``python inference.py --image photo.jpg --output results/``.

Writes the four default outputs (original, mask, cut-out, comparison) exactly as ``personseg remove`` does:
every option is ``personseg remove``'s (see ``python inference.py --help``). Works from a fresh clone without
installing the package.
"""

import sys
from pathlib import Path

src = Path(__file__).resolve().parent / "src"
if src.is_dir() and str(src) not in sys.path:
    sys.path.insert(0, str(src))

from personseg.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["remove", *sys.argv[1:]]))
