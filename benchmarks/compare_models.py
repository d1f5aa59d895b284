"""Side-by-side quality and speed of any set of models on images/ + masks/ folders, with MediaPipe and MODNet as peers.

Per model and per source: IoU (mean over images), boundary IoU (band of 2% of the image diagonal), Dice, MAE of the
soft mask, pooled IoU (intersection and union summed over all pixels first) and ms per image (predict on the decoded
photo at full resolution: preprocess, inference, upsampling to the photo's size). Every model scores the same images
in the same run; pixels a folder's ignore/ masks mark unknown count nowhere.

With ``--split-config`` the images are the training config's validation split (whole video sequences by pattern,
a fixed hash split elsewhere), and the figure that decides is the macro average over its ``select_sources`` (the
real-scene sources) of IoU and boundary IoU. Sequences labelling only their main subject (davis_people's
dance-jump) are scored on their own line, outside the all-person figures; sources outside select_sources (viton)
are reported but not averaged; ``--pooled-sources`` (camvid: many small people, many frames without one) are
summarised by pooled IoU. Example (the real-scene benchmark, 1 thread beside a training run):

    D=../shared/data
    python benchmarks/compare_models.py --models personseg-default personseg-fast --modnet \
        --data $D/davis_people $D/coco_train $D/ccp $D/fasseg_heads $D/viton $D/camvid \
        --split-config configs/personseg-default-v2.yaml --threads 1 \
        --markdown results/bench-real/compare.md --json results/bench-real/compare.json
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
from peers import DEFAULT_MEDIAPIPE, DEFAULT_MODNET, MediaPipeSelfie, MODNet  # noqa: E402

from personseg.cli.evaluate import add_split_options, split_from_args  # noqa: E402
from personseg.data.folder import PairedFolder  # noqa: E402
from personseg.data.repair import repair_backdrop_mask  # noqa: E402
from personseg.evaluation import (  # noqa: E402
    MAIN_SUBJECT,
    EvalResult,
    SplitConfig,
    evaluate_folder,
    evaluation_folders,
    macro_average,
    pooled,
)
from personseg.inference.api import load_model  # noqa: E402

MENDED = "+mended"


def evenly(stems: list[str], n: int) -> list[str]:
    """``n`` of ``stems`` spread evenly over the list (all when n >= len): a cap that keeps every part of a source."""
    if n >= len(stems):
        return list(stems)
    return [stems[i] for i in np.linspace(0, len(stems) - 1, n).round().astype(int)]


def load_folders(
    roots: list[str],
    val_fraction: float | None,
    mend: list[str],
    split: SplitConfig | None = None,
    main_subject: tuple[str, ...] = MAIN_SUBJECT,
    limits: dict[str, int] | None = None,
) -> dict[str, PairedFolder]:
    """Folders by name (main-subject sequences apart, under their pattern); ``split`` (a training config's)
    overrides ``val_fraction``; ``limits`` caps named folders to N evenly spread images. Those in ``mend`` are
    scored twice: as labelled, and as '<name>+mended' against masks mended by data.repair."""
    mended = {Path(p).resolve() for p in mend}
    limits = limits or {}
    folders = {}
    for name, folder in evaluation_folders(
        roots, split or SplitConfig(val_fraction=val_fraction), main_subject
    ).items():
        stems = evenly(folder.stems, limits[name]) if name in limits else folder.stems
        folders[name] = PairedFolder(folder.root, stems=stems, skip_invalid=True, check=False)
        if folder.root.resolve() in mended:
            fixed = PairedFolder(
                folder.root, stems=stems, skip_invalid=True, check=False, mask_fix=repair_backdrop_mask
            )
            folders[name + MENDED] = fixed
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


def _cell(figures: dict[str, float], keys: tuple[str, ...]) -> str:
    return " / ".join(f"{figures[k]:.3f}" for k in keys)


def markdown(
    report: dict[str, dict[str, dict[str, float]]],
    header: str,
    macro: dict[str, dict[str, float]] | None = None,
    select_sources: tuple[str, ...] = (),
    main_subject: tuple[str, ...] = (),
    pooled_sources: tuple[str, ...] = (),
) -> str:
    """A summary table (rows: sources and the macro average, columns: models), then one full table per model."""
    models = list(report)
    folders = list(next(iter(report.values())))
    lines = [header, ""]
    if macro or len(models) > 1:
        lines += [
            "IoU / boundary IoU (means over images); pooled-IoU rows sum all pixels first.",
            "",
            "| source | images | " + " | ".join(models) + " |",
            "| --- | ---: |" + " ---: |" * len(models),
        ]

        def row(label: str, folder: str, keys: tuple[str, ...]) -> str:
            cells = " | ".join(_cell(report[m][folder], keys) for m in models)
            return f"| {label} | {report[models[0]][folder]['images']} | {cells} |"

        in_macro = [f for f in folders if f in select_sources]
        lines += [row(f, f, ("iou", "boundary_iou")) for f in in_macro]
        if macro:
            cells = " | ".join(f"**{_cell(macro[m], ('iou', 'boundary_iou'))}**" for m in models)
            images = sum(report[models[0]][f]["images"] for f in select_sources)
            lines.append(f"| **macro average** ({', '.join(select_sources)}) | {images} | {cells} |")
        for f in folders:
            if f in in_macro or f == "all":
                continue
            if f in main_subject:
                lines.append(row(f"{f} (main subject only labelled)", f, ("iou", "boundary_iou")))
            elif f in pooled_sources:
                lines.append(row(f"{f} (small people): pooled IoU", f, ("pooled_iou",)))
            else:
                lines.append(row(f + (" (not in macro)" if macro else ""), f, ("iou", "boundary_iou")))
        lines.append("")
    for model, per in report.items():
        lines += [
            f"**{model}**",
            "",
            "| data | images | IoU | boundary IoU | Dice | MAE | pooled IoU | ms/image |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for data, s in per.items():
            lines.append(
                f"| {data} | {s['images']} | {s['iou']:.4f} | {s['boundary_iou']:.4f} | {s['dice']:.4f} "
                f"| {s['mae']:.4f} | {s['pooled_iou']:.4f} | {s['ms_per_image']:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def _limits(values: list[str]) -> tuple[int | None, dict[str, int]]:
    """``--limit`` values: ``N`` (every folder, first N) and ``SOURCE=N`` (that folder, N spread evenly)."""
    every, per = None, {}
    for value in values:
        name, sep, number = value.rpartition("=")
        if not number.isdigit():
            raise SystemExit(f"--limit {value}: expected N or SOURCE=N (e.g. viton=150)")
        if sep:
            per[name] = int(number)
        else:
            every = int(number)
    return every, per


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
        help="MediaPipe selfie .tflite run as a peer ('' to leave it out)",
    )
    parser.add_argument(
        "--modnet",
        nargs="?",
        const=str(DEFAULT_MODNET),
        default=None,
        metavar="PATH",
        help=f"also run MODNet (ONNX) as a peer; PATH defaults to $PERSONSEG_MODNET or {DEFAULT_MODNET} (~1 s/photo)",
    )
    parser.add_argument("--data", nargs="+", required=True, help="folders with images/ and masks/")
    add_split_options(parser)
    parser.add_argument(
        "--pooled-sources",
        nargs="*",
        default=["camvid"],
        help="sources summarised by pooled IoU (small people, frames without people)",
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
    parser.add_argument(
        "--limit",
        nargs="+",
        default=[],
        metavar="[SOURCE=]N",
        help="N: at most the first N images of every folder; SOURCE=N: N images of that folder, spread evenly",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worst", type=int, default=0, help="save a sheet of each model's N worst images")
    parser.add_argument("--worst-dir", type=Path, default=Path("results/worst"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()

    cv2.setNumThreads(args.threads)
    limit, limits = _limits(args.limit)
    split, main_subject = split_from_args(args)
    folders = load_folders(args.data, args.val_fraction, args.mend_labels, split, main_subject, limits)
    unknown = sorted(set(limits) - set(folders))
    if unknown:
        parser.error(f"--limit {unknown}: no such folder (have {sorted(folders)})")
    if split.select_sources:  # a macro source without --data fails now, not after the whole run
        macro_average({name: {} for name in folders}, split.select_sources, keys=())
    models = {}
    for spec in args.models:
        model = load_model(spec, providers="cpu", device="cpu", threads=args.threads)
        models[Path(spec).stem if os.sep in spec else spec] = model
    if args.flip:
        models.update({f"{name}+flip": FlipAveraged(model) for name, model in list(models.items())})
    if args.mediapipe:
        models["mediapipe-selfie"] = MediaPipeSelfie(args.mediapipe, threads=args.threads)
    if args.modnet:
        models["modnet"] = MODNet(args.modnet, threads=args.threads)

    report: dict[str, dict[str, dict[str, float]]] = {}
    macro: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        model.predict(next(iter(folders.values()))[0][0])  # warm-up: session start, first allocation
        results = {
            fname: evaluate_folder(
                model.predict,
                folder,
                0.5,
                limit,
                progress=lambda it, d=f"{name}/{fname}": tqdm(it, desc=d, leave=False),
            )
            for fname, folder in folders.items()
        }
        report[name] = {fname: r.summary() for fname, r in results.items()}
        if len(results) > 1:
            report[name]["all"] = pooled_view(results)
        if split.select_sources:
            macro[name] = macro_average(report[name], split.select_sources)
        if args.worst:
            print(
                f"worst {args.worst} of {name}: {save_worst(name, model, results, folders, args.worst, args.worst_dir)}"
            )

    if args.split_config:
        where = f"the validation split of {args.split_config} (val_patterns, else a {split.val_fraction} hash split)"
    else:
        where = f"validation split {args.val_fraction}" if args.val_fraction else "every image"
    caps = [f"first {limit} per folder"] * (limit is not None) + [f"{k}: {n} spread evenly" for k, n in limits.items()]
    header = (
        f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {args.threads} inference threads; "
        f"data: {', '.join(args.data)}; images: {where}"
        + (f"; capped ({', '.join(caps)})" if caps else "")
        + (f"; main-subject sequences apart: {', '.join(main_subject)}" if main_subject else "")
        + ("; 'all' counts each image once, against the mended masks where given" if args.mend_labels else "")
    )
    text = markdown(report, header, macro, split.select_sources, main_subject, tuple(args.pooled_sources))
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = {"header": header, "select_sources": list(split.select_sources), "results": report, "macro": macro}
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
