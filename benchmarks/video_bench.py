"""Video: end-to-end speed and temporal stability, printed as markdown tables.

1. Speed: ``process_video`` (decode -> predict -> stabilise -> guided upsample -> composite -> H.264) on a
   generated clip at 640x360, 1280x720 and 1920x1080, for each model, in frames per second of wall time.
   Then ``personseg live`` itself (its defaults) on the same clips, read as if from a camera: frames per second.
2. Flicker, with and without the stabiliser, on two generated clips built from the shipped photo of Grace
   Hopper: a *static* clip (the same photo with fresh sensor noise on every frame: the truth does not move,
   so mean |mask_t - mask_(t-1)| is pure flicker) and a *moving* clip (her cut-out, pasted with a known hard
   mask, sliding over a textured backdrop: the truth moves, so mean |dpred - dtruth| is flicker plus lag), with
   the IoU against the truth.
3. Real footage (``--davis DIR``): every labelled sequence of davis_people, frames in order, at full
   resolution: the per-frame model (with a photo's edge, the reference, and with the video's tighter edge), the
   plain stabiliser, the ``personseg live`` path (flow stabiliser), the ``personseg video`` path (flow
   stabiliser + the non-causal window, ``--window``) and MediaPipe, each with IoU,
   temporal error (mean abs((p_t - p_t-1) - (g_t - g_t-1)) x 100: the change the model makes that the truth does
   not) and flicker (mean abs(p_t - p_t-1) x 100 where the truth did not change); see
   ``personseg.evaluation.temporal_scores``. Per sequence, then the mean over the sequences a model was not
   trained on and over those it was (``--trained-config``: the training config whose val_patterns held
   sequences out; without it, every sequence counts as unseen, true of the models shipped before v2).
   Sequences where only the main subject is labelled (dance-jump) are reported apart; ``--subject main`` runs on
   every sequence (on one person it should score as ``all`` does).

    python benchmarks/video_bench.py --frames 30 --threads 2
    python benchmarks/video_bench.py --skip-speed --skip-stability --davis ../shared/data/davis_people \
        --trained-config configs/personseg-default-v2.yaml
"""

from __future__ import annotations

import argparse
import fnmatch
import itertools
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

import personseg
from personseg.inference import compose, refine
from personseg.inference.io import read_image
from personseg.inference.options import Background, RemoveOptions
from personseg.video import Stabilizer, VideoOptions, process_video
from personseg.video.pipeline import VIDEO_EDGE_CUTOFF, FrameProcessor
from personseg.video.window import DEFAULT_RADIUS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402
from peers import DEFAULT_MEDIAPIPE, MediaPipeSelfie  # noqa: E402

from personseg.data.split import patterns_for  # noqa: E402
from personseg.evaluation import MAIN_SUBJECT, read_split_config, temporal_scores  # noqa: E402

ASSETS = Path(personseg.__file__).parent / "assets"
SIZES = ("640x360", "1280x720", "1920x1080")


def photo(name: str, h: int, w: int) -> np.ndarray:
    return np.ascontiguousarray(compose.cover(read_image(ASSETS / name).rgb, h, w))


def backdrop(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A person-free textured background: smooth colour blobs plus fine grain."""
    blobs = cv2.resize(rng.uniform(30, 220, (6, 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(blobs + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def noisy(img: np.ndarray, rng: np.random.Generator, sigma: float = 4.0) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def speed(
    models: list[str],
    sizes: list[str],
    frames: int,
    threads: int,
    batch: int,
    foreground: str,
    folder: Path,
    window: int = DEFAULT_RADIUS,
) -> list[str]:
    rows = [
        "| model | size | foreground | window | frames | end-to-end fps | ms / frame |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    video_options = VideoOptions(
        background=Background(color=(0, 177, 64)),
        batch_size=batch,
        window=window,
        remove=RemoveOptions(foreground=foreground),
    )
    for size in sizes:
        clip = clip_for(size, frames, folder)
        for name in models:
            model = personseg.load_model(name, threads=threads)
            model.predict_lowres([photo("grace_hopper.jpg", 64, 64)])  # warm-up: ONNX Runtime's first run allocates
            result = process_video(clip, folder / "out.mp4", model, video_options)
            ms = 1000 / max(result.fps, 1e-9)
            rows.append(
                f"| {name} | {size} | {foreground} | {window} | {result.frames} | {result.fps:.1f} | {ms:.0f} |"
            )
            print(rows[-1], flush=True)
    return rows


def clip_for(size: str, frames: int, folder: Path) -> Path:
    """The generated test clip of ``size`` (``WxH``): Grace Hopper sliding 2 px a frame, with sensor noise."""
    clip = folder / f"clip_{size}_{frames}.mp4"
    if not clip.exists():
        w, h = (int(x) for x in size.split("x"))
        base = photo("grace_hopper.jpg", h, w)
        rng = np.random.default_rng(0)
        write_clip(clip, [noisy(np.roll(base, 2 * i, axis=1), rng) for i in range(frames)])
    return clip


def live_speed(models: list[str], sizes: list[str], frames: int, threads: int, folder: Path) -> list[str]:
    """``personseg live`` as a user runs it (its defaults: blurred background, no colour estimation, flow
    stabiliser), reading the generated clip instead of a camera, one frame at a time, with no window."""
    rows = [
        "| model | size | frames | live fps (personseg live, --no-window) | after the first frame |",
        "| --- | --- | --- | --- | --- |",
    ]
    for size in sizes:
        clip = clip_for(size, frames, folder)
        for name in models:
            cmd = [sys.executable, "-m", "personseg", "live", "--camera", str(clip), "--no-window", "-m", name]
            cmd += ["--threads", str(threads), "--max-frames", str(frames)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            found = re.search(r"(\d+) frames in ([\d.]+) s \(([\d.]+) fps; ([\d.]+) fps after", done.stderr)
            if found is None:
                raise RuntimeError(f"no fps line from personseg live: {done.stderr[-500:]}")
            rows.append(f"| {name} | {size} | {found.group(1)} | {float(found.group(3)):.1f} | {found.group(4)} |")
            print(rows[-1], flush=True)
    return rows


def masks(model, frames: list[np.ndarray], stabilizer: Stabilizer | None) -> list[np.ndarray]:
    """The pipeline's alpha for each frame (low-res predict, stabilise, guided upsample, tighten)."""
    out = []
    for img in frames:
        low = model.predict_lowres([img])[0]
        if stabilizer is not None:
            low = stabilizer.update(low, img)
        out.append(refine.tighten(refine.guided_upsample(low, img, radius=getattr(model, "guided_radius", None))))
    return out


def flicker(seq: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(seq)]))


def stability(models: list[str], frames: int, threads: int, strength: float) -> list[str]:
    h, w = 240, 320
    rng = np.random.default_rng(1)
    person = photo("grace_hopper.jpg", h, w)
    static = [noisy(person, rng) for _ in range(frames)]
    # Moving clip: her hard mask (from the default model on the clean photo) defines the truth exactly.
    label = personseg.load_model("personseg-default", threads=threads).predict(person) > 0.5
    scene = backdrop(h, w, rng)
    moving, truth = [], []
    for i in range(frames):
        dx = round(-60 + 120 * i / max(1, frames - 1))
        m = np.roll(label, dx, axis=1)
        m[:, : max(0, dx)] = False
        m[:, w + min(0, dx) :] = False
        img = np.where(m[..., None], np.roll(person, dx, axis=1), scene)
        moving.append(noisy(img, rng))
        truth.append(m.astype(np.float32))
    dtruth = [b - a for a, b in itertools.pairwise(truth)]
    rows = [
        "| model | stabiliser | static: mean abs(m_t - m_t-1) | moving: mean abs(dpred - dtruth) | moving IoU |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in models:
        model = personseg.load_model(name, threads=threads)
        for label_text, stab in (("off", None), (f"on ({strength})", strength)):
            still = masks(model, static, Stabilizer(stab) if stab else None)
            pred = masks(model, moving, Stabilizer(stab) if stab else None)
            dpred = [b - a for a, b in itertools.pairwise(pred)]
            lag = float(np.mean([np.abs(p - t).mean() for p, t in zip(dpred, dtruth, strict=True)]))
            ious = [
                ((p > 0.5) & (t > 0.5)).sum() / max(1, ((p > 0.5) | (t > 0.5)).sum())
                for p, t in zip(pred, truth, strict=True)
            ]
            rows.append(f"| {name} | {label_text} | {flicker(still):.4f} | {lag:.4f} | {np.mean(ious):.3f} |")
            print(rows[-1], flush=True)
    return rows


def load_sequences(root: Path) -> dict[str, list[tuple[Path, Path]]]:
    """davis-style ``SEQUENCE_FRAME`` stems -> (image, mask) paths in frame order."""
    sequences: dict[str, list[tuple[Path, Path]]] = {}
    for image in sorted((root / "images").iterdir()):
        mask = root / "masks" / f"{image.stem}.png"
        if mask.exists():
            sequences.setdefault(image.stem.rsplit("_", 1)[0], []).append((image, mask))
    if not sequences:
        raise SystemExit(f"{root}: no images/ + masks/ pairs")
    return sequences


class EmptyPrior:
    """A temporal model run as a per-frame one: every frame gets an empty prior, as a photo does."""

    temporal = False

    def __init__(self, model) -> None:
        self._model = model

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def predict_lowres(self, images, priors=None):
        return self._model.predict_lowres(images)


def video_path_masks(
    model,
    frames: list[np.ndarray],
    stabilizer: str | None,
    strength: float,
    subject: str = "all",
    window: int = 0,
    edge_cutoff: float = VIDEO_EDGE_CUTOFF,
) -> list[np.ndarray]:
    """Full-resolution alpha per frame exactly as ``personseg video`` makes it (its ``FrameProcessor``, without
    the compositing): ``stabilizer`` None is frame by frame; a temporal model is fed its previous output;
    ``window`` > 0 adds the non-causal window and the file's closer second look (``personseg video --window``;
    live has neither)."""
    options = VideoOptions(
        smooth=stabilizer is not None,
        stabilizer=stabilizer or "flow",
        smooth_strength=strength,
        window=window,
        remove=RemoveOptions(subject=subject, edge_cutoff=edge_cutoff),
    )
    processor = FrameProcessor(model, options, kind="mask", file=window > 0)
    out = []
    for rgb in frames:
        out += [mask for _, mask in processor.push(None, rgb, *processor.predict([rgb])[0])]
    out += [mask for _, mask in processor.flush()]
    return [mask.astype(np.float32) / 255.0 for mask in out]


#: the per-frame reference keeps a photo's edge (``personseg remove``'s default cutoff)
PHOTO = {"edge_cutoff": RemoveOptions().edge_cutoff}


def real_footage(
    root: Path,
    models: list[str],
    threads: int,
    strength: float,
    held_out: list[str] | None,
    max_frames: int,
    window: int = DEFAULT_RADIUS,
    only: list[str] | None = None,
) -> list[str]:
    """``held_out``: stem globs of the sequences the models did not train on (None: they trained on none);
    ``only``: sequence-name globs to score (None: all)."""
    sequences = load_sequences(root)
    if only:
        sequences = {k: v for k, v in sequences.items() if any(fnmatch.fnmatchcase(k, g) for g in only)}
        if not sequences:
            raise SystemExit(f"{root}: no sequence matches {' '.join(only)}")
    main_only = patterns_for(root.name, MAIN_SUBJECT)
    loaded = {name: personseg.load_model(name, threads=threads) for name in models}
    runs: list[tuple[str, Callable]] = []
    for name, model in loaded.items():
        temporal = getattr(model, "temporal", False)
        single = EmptyPrior(model) if temporal else model  # a temporal model per frame: empty priors
        # The reference: the model frame by frame as a photo gets it (a photo's soft edge).
        runs.append((f"{name} per frame", lambda f, m=single: video_path_masks(m, f, None, strength, **PHOTO)))
        runs.append((f"{name} per frame, video edge", lambda f, m=single: video_path_masks(m, f, None, strength)))
        if temporal:
            runs.append((f"{name} fed its output", lambda f, m=model: video_path_masks(m, f, None, strength)))
        runs.append((f"{name} plain stabiliser", lambda f, m=model: video_path_masks(m, f, "plain", strength)))
        runs.append((f"{name} live path (flow)", lambda f, m=model: video_path_masks(m, f, "flow", strength)))
        runs.append(
            (
                f"{name} video path (flow + window {window})",
                lambda f, m=model: video_path_masks(m, f, "flow", strength, window=window),
            )
        )
    if DEFAULT_MEDIAPIPE.exists():
        peer = MediaPipeSelfie(threads=threads)
        runs.append(("mediapipe per frame", lambda f: [peer.predict(x) for x in f]))
    main_runs = [
        (
            f"{name} video path --subject main",
            lambda f, m=model: video_path_masks(m, f, "flow", strength, "main", window),
        )
        for name, model in loaded.items()
    ]
    rows = [
        "| sequence | trained on | method | frames | IoU | temporal error | of it where the truth moved | flicker |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    summary: dict[tuple[str, bool], list[dict]] = {}
    for seq, pairs in sequences.items():
        pairs = pairs[:max_frames] if max_frames else pairs
        frames = [read_image(p).rgb for p, _ in pairs]
        truths = [read_image(m).rgb[..., 0].astype(np.float32) / 255.0 for _, m in pairs]
        stem = pairs[0][0].stem
        is_main = any(fnmatch.fnmatchcase(stem, g) for g in main_only)
        seen = held_out is not None and not any(fnmatch.fnmatchcase(stem, g) for g in held_out)
        for label, run in runs + main_runs:  # --subject main on every sequence: the same as all on one person
            scores = temporal_scores(run(frames), truths)
            if not is_main:
                summary.setdefault((label, seen), []).append(scores)
            tag = f"{seq} (main subject only)" if is_main else seq
            rows.append(
                f"| {tag} | {'yes' if seen else 'no'} | {label} | {scores['frames']} | {scores['iou']:.3f} | "
                f"{scores['temporal_error']:.2f} | {scores['te_moved']:.2f} | {scores['flicker']:.2f} |"
            )
            print(rows[-1], flush=True)
    rows += [
        "",
        "| sequences | method | sequences | IoU | temporal error | of it where the truth moved | flicker |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (label, seen), items in summary.items():
        mean = {k: float(np.mean([i[k] for i in items])) for k in ("iou", "temporal_error", "te_moved", "flicker")}
        rows.append(
            f"| {'trained on' if seen else 'not trained on'} | {label} | {len(items)} | {mean['iou']:.3f} | "
            f"{mean['temporal_error']:.2f} | {mean['te_moved']:.2f} | {mean['flicker']:.2f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="frames per clip (default: 30)")
    parser.add_argument("--models", nargs="+", default=["personseg-default", "personseg-fast"])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), help="WxH, default: " + " ".join(SIZES))
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default: 2)")
    parser.add_argument("--batch", type=int, default=4, help="frames per network call (default: 4)")
    parser.add_argument(
        "--foreground", choices=("blur", "ml", "none"), default="blur", help="foreground estimation (default: blur)"
    )
    parser.add_argument("--strength", type=float, default=0.7, help="stabiliser strength (default: 0.7)")
    parser.add_argument("--davis", type=Path, help="davis_people-style folder: score real labelled sequences")
    parser.add_argument(
        "--trained-config", help="training config whose val_patterns name the sequences the model did NOT train on"
    )
    parser.add_argument("--max-frames", type=int, default=0, help="frames per real sequence (0: all)")
    parser.add_argument("--sequences", nargs="+", help="score only these sequences (name globs; default: all)")
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_RADIUS,
        help=f"the video path's window, for the speed run and the real footage (default: {DEFAULT_RADIUS})",
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-stability", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    print(f"machine: {machine()}; threads {args.threads}; {args.frames} frames per clip\n", flush=True)
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_speed:
            start = time.perf_counter()
            tables.append(
                speed(
                    args.models,
                    args.sizes,
                    args.frames,
                    args.threads,
                    args.batch,
                    args.foreground,
                    Path(tmp),
                    args.window,
                )
            )
            print(f"(speed: {time.perf_counter() - start:.0f} s)\n", flush=True)
            tables.append(live_speed(args.models, args.sizes, args.frames, args.threads, Path(tmp)))
    if not args.skip_stability:
        tables.append(stability(args.models, args.frames, args.threads, args.strength))
    if args.davis:
        held_out = None
        if args.trained_config:
            held_out = patterns_for(args.davis.name, read_split_config(args.trained_config).val_patterns)
        tables.append(
            real_footage(
                args.davis,
                args.models,
                args.threads,
                args.strength,
                held_out,
                args.max_frames,
                args.window,
                args.sequences,
            )
        )
    print()
    for rows in tables:
        print("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
