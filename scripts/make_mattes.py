"""Write MODNet's alpha matte of every photo in labelled folders, for training's boundary targets.

Training can take a single-person source's boundary from a matting peer instead of its hand-drawn polygon edge
(``boundary_mattes`` in a training config; the rule is personseg.data.mattes.boundary_target). This script makes
those mattes once, outside the repository and ../shared:

    python scripts/make_mattes.py --data ../shared/data/ccp ../shared/data/fasseg_heads \
        --output ~/.cache/personseg/mattes

writes OUTPUT/<folder name>/<stem>.png (8-bit, the photo's size). Existing mattes are kept, so an interrupted run
resumes; each file is written to a temporary name and renamed. MODNet (Apache-2.0; its licence allows its mattes
as training targets) is fetched as benchmarks/peers.py says; about 1 s a photo on 2 threads.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from peers import DEFAULT_MODNET, MODNet  # noqa: E402

from personseg.data.folder import read_rgb, scan_folder  # noqa: E402
from personseg.inference.write import write_image  # noqa: E402

log = logging.getLogger("make_mattes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="folders with images/ and masks/")
    parser.add_argument("--output", required=True, help="mattes go to OUTPUT/<folder name>/<stem>.png")
    parser.add_argument("--modnet", default=str(DEFAULT_MODNET), help="MODNet's ONNX file")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        peer = MODNet(args.modnet, threads=args.threads)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = []
    for root in map(Path, args.data):
        pairs, _ = scan_folder(root, check=False)
        if not pairs:
            print(f"error: {root}: no image/mask pairs", file=sys.stderr)
            return 2
        out_dir = Path(args.output).expanduser() / root.name
        out_dir.mkdir(parents=True, exist_ok=True)
        todo = [p for p in pairs if not (out_dir / f"{p.stem}.png").is_file()]
        log.info("%s: %d photos, %d mattes to make in %s", root, len(pairs), len(todo), out_dir)
        for pair in tqdm(todo, desc=root.name, unit="photo"):
            try:
                alpha = peer.predict(read_rgb(pair.image))
                write_image(out_dir / f"{pair.stem}.png", np.round(np.clip(alpha, 0.0, 1.0) * 255).astype(np.uint8))
            except (OSError, ValueError) as exc:
                failed.append(f"{pair.image}: {exc}")
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
