#!/usr/bin/env python
"""Download a public person dataset as ``OUTPUT/images`` + ``OUTPUT/masks`` (default: Penn-Fudan into data/).

    python scripts/download_dataset.py              # Penn-Fudan -> data/images + data/masks
    python scripts/download_dataset.py --dataset coco-person-val --output data/coco --limit 500
    python scripts/download_dataset.py --list

Same as ``personseg data download NAME --root OUTPUT``, and runs from a fresh clone without installing the
package. ``--url`` (or $PERSONSEG_DATASET_URL_OVERRIDE) fetches the archive from a mirror or local copy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import personseg  # noqa: F401
except ImportError:  # a fresh clone: use the sources next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from personseg.cli import main as personseg_main  # noqa: E402
from personseg.cli.data import add_download_options  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="penn-fudan", help="dataset (default: penn-fudan; see --list)")
    parser.add_argument("--output", default="data", help="output folder (default: data)")
    parser.add_argument("--list", action="store_true", help="list the datasets and exit")
    add_download_options(parser)
    args = parser.parse_args(argv)
    if args.list:
        return personseg_main(["data", "list"])
    forwarded = ["data", "download", args.dataset, "--root", args.output]
    if args.limit is not None:
        forwarded += ["--limit", str(args.limit)]
    if args.keep_archives:
        forwarded.append("--keep-archives")
    if args.url:
        forwarded += ["--url", args.url]
    return personseg_main(forwarded)


if __name__ == "__main__":
    sys.exit(main())
