"""Render models side by side on real photos and video frames, to look at with your own eyes.

Each row is one image: the photo, then each model's cut-out on a checkerboard (MediaPipe selfie as the peer).
Video files contribute a few evenly spaced frames. Example:

    python benchmarks/sample_sheet.py --models personseg-default personseg-fast \
        --inputs ../shared/samples --frames 3 --output results/samples.jpg
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import DEFAULT_MEDIAPIPE, MediaPipeSelfie  # noqa: E402

from personseg.data.folder import IMAGE_EXTENSIONS  # noqa: E402
from personseg.inference.api import load_model  # noqa: E402
from personseg.inference.compose import checkerboard, over  # noqa: E402
from personseg.inference.io import read_image  # noqa: E402

VIDEO = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def video_frames(path: Path, n: int) -> list[tuple[str, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    out = []
    for k in range(n):
        index = int((k + 0.5) * total / n)
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        if ok:
            out.append((f"{path.name}#{index}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    cap.release()
    return out


def gather(inputs: list[Path], frames: int) -> list[tuple[str, np.ndarray]]:
    items = []
    for root in inputs:
        for path in sorted(root.iterdir()) if root.is_dir() else [root]:
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                items.append((path.name, read_image(path).rgb))
            elif path.suffix.lower() in VIDEO and frames:
                items.extend(video_frames(path, frames))
    return items


def cutout_tile(rgb: np.ndarray, alpha: np.ndarray, height: int) -> np.ndarray:
    tile = over(rgb, alpha, checkerboard(*rgb.shape[:2]))
    scale = height / rgb.shape[0]
    return cv2.resize(tile, (max(1, round(rgb.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.putText(tile, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
    return tile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["personseg-default", "personseg-fast"])
    parser.add_argument("--mediapipe", default=str(DEFAULT_MEDIAPIPE), help="'' to leave the peer out")
    parser.add_argument("--inputs", nargs="+", type=Path, required=True, help="image/video files or folders")
    parser.add_argument("--frames", type=int, default=3, help="frames taken from each video")
    parser.add_argument("--height", type=int, default=240, help="row height in pixels")
    parser.add_argument("--output", type=Path, default=Path("results/samples.jpg"))
    args = parser.parse_args()

    models = {Path(m).stem if os.sep in m else m: load_model(m, providers="cpu", device="cpu") for m in args.models}
    if args.mediapipe:
        models["mediapipe-selfie"] = MediaPipeSelfie(args.mediapipe)
    rows = []
    for name, rgb in gather(args.inputs, args.frames):
        tiles = [label(cutout_tile(rgb, np.ones(rgb.shape[:2], np.float32), args.height), name)]
        tiles += [label(cutout_tile(rgb, m.predict(rgb), args.height), n) for n, m in models.items()]
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"{len(rows)} rows x {len(models)} models: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
