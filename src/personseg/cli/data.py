"""``personseg data``: list the public person datasets and download one as ``images/`` + ``masks/``."""

from __future__ import annotations

import argparse
import os
import sys

from personseg.cli.folders import folders_to_create, remove_if_empty

#: environment variable read as the default of ``--url`` (a mirror or local copy of the dataset's archive)
URL_OVERRIDE_ENV = "PERSONSEG_DATASET_URL_OVERRIDE"


def add_download_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``personseg data download`` and ``scripts/download_dataset.py``."""
    parser.add_argument(
        "--limit", type=int, default=None, help="convert at most N pairs (COCO: fetch only those images)"
    )
    parser.add_argument("--keep-archives", action="store_true", help="keep the downloaded archives in ROOT/.download")
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_OVERRIDE_ENV),
        help=f"fetch the dataset's archive from this URL instead (mirror or local copy; its pinned checksum "
        f"is then not applied and the computed sha256 is logged); default: ${URL_OVERRIDE_ENV}",
    )


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    actions.add_parser("list", help="list the datasets", description="list the registered datasets")
    download = actions.add_parser(
        "download",
        help="download, verify and convert a dataset",
        description="download, verify and convert a dataset into ROOT/images + ROOT/masks (0/255 PNG)",
    )
    download.add_argument("name", metavar="NAME", help="dataset name (see 'personseg data list')")
    download.add_argument("--root", default=None, help="output folder (default: data/NAME)")
    add_download_options(download)
    parser.set_defaults(func=run, data_parser=parser)


def _size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    raise AssertionError("unreachable")


def _list() -> int:
    from personseg.data.sources import SOURCES

    print(f"{'name':20s} {'download':>10s}  {'checksum':8s}  {'pairs':>6s}  description")
    for source in SOURCES.values():
        sizes = [f.size for f in source.files]
        total = None if None in sizes else sum(sizes)
        if all(f.sha256 for f in source.files):
            pinned = "sha256"
        else:
            pinned = "md5 only" if all(f.sha256 or f.md5 for f in source.files) else "none"
        pairs = source.pairs or "?"
        print(f"{source.name:20s} {_size(total):>10s}  {pinned:8s}  {pairs:>6}  {source.description}")
        print(f"{'':20s} licence: {source.licence}")
    return 0


def _fail(problem: str, code: int = 1) -> int:
    print(f"personseg data: {problem}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    if args.data_command == "list":
        return _list()
    if args.data_command != "download":
        args.data_parser.print_help(sys.stderr)
        return 2
    from personseg.data.download import DownloadError, UnsafeArchiveError
    from personseg.data.sources import SOURCES, ConversionError, prepare

    if args.name not in SOURCES:
        return _fail(f"unknown dataset {args.name!r}; choose from: {', '.join(SOURCES)}", 2)
    if args.limit is not None and args.limit < 1:
        return _fail(f"--limit must be at least 1, got {args.limit}", 2)
    root = args.root or os.path.join("data", args.name)
    created = folders_to_create(root)
    try:
        count = prepare(
            args.name,
            root,
            limit=args.limit,
            keep_archives=args.keep_archives,
            progress=sys.stderr.isatty(),
            url=args.url,
        )
    except (DownloadError, UnsafeArchiveError, ConversionError, OSError) as exc:
        remove_if_empty(created)
        return _fail(str(exc))
    print(f"{args.name}: {count} image/mask pairs in {root}")
    return 0
