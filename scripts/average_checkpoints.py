"""Average the weights of fine-tunes of one model into one checkpoint (a "model soup").

The v2 default (shipped in session 8, kept as checkpoints/personseg-default-v2-soup.pt) is the mean of the
finished v2 run and epoch 2 of its flag fine-tune:

    python scripts/average_checkpoints.py --output checkpoints/personseg-default-v2-soup.pt \
        checkpoints/personseg-default-v2-best.pt runs/personseg-default-v2-flags/epoch2.pt
"""

from __future__ import annotations

import argparse
import logging
import sys

from personseg.models.checkpoint import atomic_save, average_checkpoints


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help=".pt checkpoints of the same model (two or more)")
    parser.add_argument("--output", required=True, help="the averaged .pt to write")
    parser.add_argument("--note", default="", help="a line of provenance stored in the checkpoint's metadata")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        ckpt = average_checkpoints(args.checkpoints, args.note)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    atomic_save(ckpt, args.output)
    logging.info("wrote %s: the mean of %d checkpoints", args.output, len(args.checkpoints))
    return 0


if __name__ == "__main__":
    sys.exit(main())
