"""How sharp is boundary IoU? Score a model's masks grown or shrunk by 1-2 pixels against the labels.

A model's mask shifted by one pixel all round scores far lower boundary IoU when the band is only a few pixels wide
(viton's 192x256 photos: 2% of the diagonal is 6 px). If the unshifted mask scores best, the model has no
systematic bias against the labels; the drop per pixel shows how much label noise of a pixel costs. Example:

    python benchmarks/boundary_shift.py --model personseg-default --data ../shared/data/viton ../shared/data/ccp \
        --mend-labels ../shared/data/viton --val-fraction 0.1 --limit 120
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_models import MENDED, load_folders  # noqa: E402

from personseg.evaluation import boundary_iou  # noqa: E402
from personseg.inference.api import load_model  # noqa: E402

SHIFTS = (-2, -1, 0, 1, 2)


def shifted(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` (bool) dilated (pixels > 0) or eroded (< 0) by ``abs(pixels)`` with a 3x3 square."""
    m = mask.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    if pixels > 0:
        m = cv2.dilate(m, kernel, iterations=pixels)
    elif pixels < 0:
        m = cv2.erode(m, kernel, iterations=-pixels)
    return m > 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="personseg-default", help="shipped model name or path")
    parser.add_argument("--data", nargs="+", required=True, help="folders with images/ and masks/")
    parser.add_argument("--val-fraction", type=float, default=None)
    parser.add_argument("--mend-labels", nargs="*", default=[], metavar="ROOT")
    parser.add_argument("--limit", type=int, default=None, help="at most N images per folder")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    model = load_model(args.model, providers="cpu", device="cpu", threads=args.threads)
    folders = load_folders(args.data, args.val_fraction, args.mend_labels)
    print(f"boundary IoU of {args.model}'s mask grown (+) or shrunk (-) by N pixels\n")
    print("| data | images | " + " | ".join(f"{s:+d} px" for s in SHIFTS) + " |")
    print("| --- | ---: |" + " ---: |" * len(SHIFTS))
    for name, folder in folders.items():
        if name + MENDED in folders:
            continue  # the mended labels stand in for the original ones
        n = min(len(folder), args.limit or len(folder))
        scores = {s: [] for s in SHIFTS}
        for i in tqdm(range(n), desc=name, leave=False):
            rgb, truth = folder[i]
            pred = model.predict(rgb) > 0.5
            for s in SHIFTS:
                scores[s].append(boundary_iou(shifted(pred, s), truth > 0.5))
        print(f"| {name} | {n} | " + " | ".join(f"{np.mean(scores[s]):.3f}" for s in SHIFTS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
