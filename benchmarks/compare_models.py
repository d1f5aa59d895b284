"""Side-by-side quality and speed of any set of models on images/ + masks/ folders, with MediaPipe as the peer.

Per model and per folder: IoU (mean over images), Dice, boundary IoU (band of 2% of the image diagonal), MAE of
the soft mask, and ms per image (predict on the decoded photo at full resolution: preprocess, inference,
upsampling to the photo's size). Every model scores the same images in the same run. Example (the shipped models
on the training validation split, 2 threads):

    python benchmarks/compare_models.py --models personseg-default personseg-fast \
        --data ../shared/data/ccp ../shared/data/viton ../shared/data/fasseg_heads ../shared/data/coco_train \
        --val-fraction 0.1 --threads 2 --worst 20 --worst-dir results/worst --markdown results/compare.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_name  # noqa: E402
from peers import DEFAULT_MEDIAPIPE, MediaPipeSelfie  # noqa: E402

from personseg.data.folder import PairedFolder  # noqa: E402
from personseg.data.repair import repair_backdrop_mask  # noqa: E402
from personseg.data.split import split_stems  # noqa: E402
from personseg.evaluation import EvalResult, evaluate_folder, pooled  # noqa: E402
from personseg.inference.api import load_model  # noqa: E402

MENDED = "+mended"


def load_folders(roots: list[str], val_fraction: float | None, mend: list[str]) -> dict[str, PairedFolder]:
    """Folders by name; those in ``mend`` are scored twice: as labelled, and as '<name>+mended' against masks
    mended by data.repair."""
    mended = {Path(p).resolve() for p in mend}
    folders = {}
    for spec in roots:
        root = Path(spec)
        folder = PairedFolder(root, skip_invalid=True)
        stems = split_stems(root.name, folder.stems, val_fraction)[1] if val_fraction is not None else folder.stems
        folders[root.name] = PairedFolder(root, stems=stems, skip_invalid=True, check=False)
        if root.resolve() in mended:
            fixed = PairedFolder(root, stems=stems, skip_invalid=True, check=False, mask_fix=repair_backdrop_mask)
            folders[root.name + MENDED] = fixed
    return folders


def pooled_view(results: dict[str, EvalResult]) -> dict[str, float]:
    """Mean over all images, each image once: a mended folder stands in for its original."""
    return pooled({k: r for k, r in results.items() if k + MENDED not in results})


class FlipAveraged:
    """A model whose prediction is the mean of the photo's and its mirror image's (test-time augmentation)."""

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        mirrored = self.model.predict(np.ascontiguousarray(rgb[:, ::-1]))[:, ::-1]
        return (self.model.predict(rgb) + mirrored) / 2


def overlay(rgb: np.ndarray, prob: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Photo with the errors painted: missed person red, false person blue, agreement kept."""
    out = rgb.astype(np.float32) * 0.6
    pred, true = prob >= 0.5, truth >= 0.5
    out[true & ~pred] = (230, 40, 40)
    out[~true & pred] = (40, 90, 230)
    out[true & pred] += 0.4 * 255 * np.array([0.2, 0.8, 0.2])
    return np.clip(out, 0, 255).astype(np.uint8)


def save_worst(name: str, model, results: dict[str, EvalResult], folders, n: int, out_dir: Path) -> Path:
    """A sheet of the n worst images by IoU over all folders: photo | errors (red missed, blue false)."""
    ranked = sorted(
        ((s["iou"], fname, stem) for fname, r in results.items() for stem, s in zip(r.stems, r.scores, strict=True)),
    )[:n]
    tiles = []
    for iou, fname, stem in ranked:
        folder = folders[fname]
        rgb, truth = folder[folder.stems.index(stem)]
        prob = model.predict(rgb)
        scale = 240 / rgb.shape[0]
        size = (max(1, int(rgb.shape[1] * scale)), 240)
        tile = np.hstack([cv2.resize(rgb, size), cv2.resize(overlay(rgb, prob, truth), size)])
        cv2.putText(
            tile,
            f"{fname}/{stem[:18]} IoU {iou:.2f}",
            (4, 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 255, 0),
            1,
            cv2.LINE_AA,
        )
        tiles.append(tile)
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0))) for t in tiles]
    rows = [
        np.hstack(tiles[i : i + 2]) if i + 1 < len(tiles) else np.hstack([tiles[i], np.zeros_like(tiles[i])])
        for i in range(0, len(tiles), 2)
    ]
    sheet = np.vstack(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"worst_{name.split(' ')[0].replace('/', '_')}.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return path


def markdown(report: dict[str, dict[str, dict[str, float]]], header: str) -> str:
    lines = [
        header,
        "",
        "| model | data | images | IoU | Dice | boundary IoU | MAE | ms/image |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model, per in report.items():
        for data, s in per.items():
            lines.append(
                f"| {model} | {data} | {s['images']} | {s['iou']:.4f} | {s['dice']:.4f} | {s['boundary_iou']:.4f} "
                f"| {s['mae']:.4f} | {s['ms_per_image']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="*",
        default=["personseg-default", "personseg-fast"],
        help="shipped model names or paths to .onnx / .pt",
    )
    parser.add_argument(
        "--mediapipe",
        default=str(DEFAULT_MEDIAPIPE),
        help="MediaPipe selfie .tflite run as the peer ('' to leave it out)",
    )
    parser.add_argument("--data", nargs="+", required=True, help="folders with images/ and masks/")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="score only the fixed validation split used in training (e.g. 0.1)",
    )
    parser.add_argument(
        "--mend-labels",
        nargs="*",
        default=[],
        metavar="ROOT",
        help="--data folders on a plain backdrop whose masks miss necks: also score against mended masks",
    )
    parser.add_argument(
        "--flip", action="store_true", help="also score each model with test-time flip averaging ('<name>+flip')"
    )
    parser.add_argument("--limit", type=int, default=None, help="at most N images per folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worst", type=int, default=0, help="save a sheet of each model's N worst images")
    parser.add_argument("--worst-dir", type=Path, default=Path("results/worst"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()

    cv2.setNumThreads(args.threads)
    folders = load_folders(args.data, args.val_fraction, args.mend_labels)
    models = {}
    for spec in args.models:
        model = load_model(spec, providers="cpu", threads=args.threads)
        models[Path(spec).stem if os.sep in spec else spec] = model
    if args.flip:
        models.update({f"{name}+flip": FlipAveraged(model) for name, model in list(models.items())})
    if args.mediapipe:
        peer = MediaPipeSelfie(args.mediapipe, threads=args.threads)
        models["mediapipe-selfie"] = peer

    report: dict[str, dict[str, dict[str, float]]] = {}
    for name, model in models.items():
        model.predict(next(iter(folders.values()))[0][0])  # warm-up: session start, first allocation
        results = {
            fname: evaluate_folder(
                model.predict,
                folder,
                0.5,
                args.limit,
                progress=lambda it, d=f"{name}/{fname}": tqdm(it, desc=d, leave=False),
            )
            for fname, folder in folders.items()
        }
        report[name] = {fname: r.summary() for fname, r in results.items()}
        if len(results) > 1:
            report[name]["all"] = pooled_view(results)
        if args.worst:
            print(
                f"worst {args.worst} of {name}: {save_worst(name, model, results, folders, args.worst, args.worst_dir)}"
            )

    header = (
        f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {args.threads} inference threads; "
        f"data: {', '.join(args.data)}"
        + (f" (validation split {args.val_fraction})" if args.val_fraction else "")
        + ("; 'all' counts each image once, against the mended masks where given" if args.mend_labels else "")
    )
    text = markdown(report, header)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"header": header, "results": report}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
