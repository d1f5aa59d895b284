"""Video: decode -> segment -> encode on tiny generated clips, with a fake segmenter so results are exact.

The fake thresholds brightness (the clips are a bright ellipse on a dark noisy background), so the tests check
the plumbing (frame count, timing, size, rotation, audio, alpha, atomic output) rather than model quality;
one test runs the shipped personseg-fast end to end.
"""

from __future__ import annotations

import os
import re
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

av = pytest.importorskip("av")

from personseg.cli import main  # noqa: E402
from personseg.inference.options import Background  # noqa: E402
from personseg.video import VideoError, VideoOptions, VideoReader, process_video  # noqa: E402
from personseg.video.reader import apply_rotation, expand_sequence  # noqa: E402

FPS = 12


def ellipse(h: int, w: int, i: int, n: int) -> np.ndarray:
    """The truth mask of frame ``i`` of ``n``: an ellipse moving from left to right."""
    cx = w * (0.3 + 0.4 * i / max(1, n - 1))
    yy, xx = np.mgrid[:h, :w]
    return ((yy - 0.55 * h) / (0.3 * h)) ** 2 + ((xx - cx) / (0.15 * w)) ** 2 <= 1


def frames_for(h: int, w: int, n: int, seed: int = 0, moving: bool = True) -> tuple[list[np.ndarray], list]:
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for i in range(n):
        mask = ellipse(h, w, i if moving else 0, n)
        img = rng.normal(40, 6, (h, w, 3))
        img[mask] = 215
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        masks.append(mask)
    return images, masks


def make_clip(
    path: Path,
    w: int = 96,
    h: int = 64,
    n: int = 12,
    audio: bool = False,
    rotation: int = 0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
) -> list[np.ndarray]:
    """Write a clip (optionally with a 440 Hz AAC track and a display rotation); return its truth masks."""
    images, masks = frames_for(h, w, n)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        if audio:
            sound = out.add_stream("aac", rate=16000)
            sound.layout = "mono"
        for img in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if audio:
            total = 16000 * n // FPS
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / 16000)).astype(np.float32)
            for k in range(0, total, 1024):
                frame = av.AudioFrame.from_ndarray(wave[None, k : k + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 16000, k
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return masks


class FakeSegmenter:
    """Brightness threshold at 1/3 resolution, through the Segmenter's ``predict_lowres`` interface.

    ``fail_after``: raise ``error`` once this many frames have been seen (an interrupt mid-run).
    """

    threshold = 0.5

    def __init__(self, fail_after: int | None = None, error: type[BaseException] = KeyboardInterrupt) -> None:
        self.fail_after, self.error, self.seen, self.batches = fail_after, error, 0, []

    def predict_lowres(self, images):
        self.batches.append(len(images))
        out = []
        for img in images:
            if self.fail_after is not None and self.seen >= self.fail_after:
                raise self.error()
            self.seen += 1
            h, w = img.shape[:2]
            small = cv2.resize(img, (max(1, w // 3), max(1, h // 3)), interpolation=cv2.INTER_AREA)
            out.append(np.clip((small.mean(2) - 90.0) / 60.0, 0.0, 1.0).astype(np.float32))
        return out


def decode(path: Path, codec: str | None = None) -> tuple[list[av.VideoFrame], av.container.InputContainer]:
    """Every video frame of ``path`` (with an explicit decoder, e.g. libvpx-vp9 to get VP9's alpha)."""
    container = av.open(str(path))
    stream = container.streams.video[0]
    if codec is None:
        frames = list(container.decode(stream))
    else:
        ctx = av.CodecContext.create(codec, "r")
        frames = [f for packet in container.demux(stream) for f in ctx.decode(packet)]
    return frames, container


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def no_leftovers(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".partial-" in p.name]


# --- formats -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("audio", [True, False])
def test_composite_keeps_count_rate_size_and_audio(tmp_path, audio):
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, audio=audio)
    result = process_video(
        src, out, FakeSegmenter(), VideoOptions(background=Background(color=(0, 0, 255)), batch_size=3)
    )
    assert result.output == out and result.kind == "composite" and result.frames == 12
    frames, container = decode(out)
    stream = container.streams.video[0]
    assert len(frames) == 12 and stream.average_rate == FPS
    assert (stream.width, stream.height, stream.codec_context.name) == (96, 64, "h264")
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert len(container.streams.audio) == (1 if audio else 0)
    if audio:  # copied as is: still AAC, as long as the input's
        assert container.streams.audio[0].codec_context.name == "aac"
        assert abs(float(container.streams.audio[0].duration * container.streams.audio[0].time_base) - 1.0) < 0.15
    # The background (blue) replaces the dark scene, the bright person stays.
    rgb = frames[0].to_ndarray(format="rgb24")
    assert rgb[2, 2, 2] > 200 and rgb[2, 2, 0] < 60
    assert no_leftovers(tmp_path)


def test_webm_has_alpha_following_the_shape_and_opus_audio(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "cut.webm"
    masks = make_clip(src, audio=True)
    process_video(src, out, FakeSegmenter())
    frames, container = decode(out, codec="libvpx-vp9")
    stream = container.streams.video[0]
    assert stream.metadata.get("alpha_mode") == "1"
    assert len(frames) == 12 and {f.format.name for f in frames} == {"yuva420p"}
    for frame, truth in zip(frames, masks, strict=True):
        alpha = frame.to_ndarray(format="rgba")[..., 3]
        assert iou(alpha > 128, truth) > 0.85
    # AAC is not allowed in WebM: re-encoded to Opus.
    assert [a.codec_context.name for a in container.streams.audio] == ["opus"]


def test_prores_4444_with_alpha(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "cut.mov"
    make_clip(src, n=5)
    process_video(src, out, FakeSegmenter(), VideoOptions(output_kind="prores"))
    frames, container = decode(out)
    assert container.streams.video[0].codec_context.name == "prores"
    assert len(frames) == 5 and frames[0].format.name.startswith("yuva444p")


def test_mask_video_follows_the_moving_shape(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "mask.mp4"
    masks = make_clip(src)
    process_video(src, out, FakeSegmenter(), VideoOptions(output_kind="mask", smooth=False))
    frames, _ = decode(out)
    assert len(frames) == len(masks)
    centers = []
    for frame, truth in zip(frames, masks, strict=True):
        pred = frame.to_ndarray(format="gray") > 128
        assert iou(pred, truth) > 0.85
        centers.append(np.nonzero(pred)[1].mean())
    assert centers[-1] - centers[0] > 0.3 * 96  # it moved right with the ellipse


def test_png_sequence_is_rgba(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "frames"
    masks = make_clip(src, n=6)
    result = process_video(src, out, FakeSegmenter())
    assert result.kind == "png-seq"
    files = sorted(out.glob("frame_*.png"))
    assert len(files) == 6
    for path, truth in zip(files, masks, strict=True):
        rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert rgba.shape == (64, 96, 4)
        assert iou(rgba[..., 3] > 128, truth) > 0.85
    assert no_leftovers(tmp_path)


def test_odd_size_is_padded_for_h264_and_kept_for_alpha(tmp_path):
    src = tmp_path / "odd.mkv"
    make_clip(src, w=65, h=49, n=5, codec="ffv1", pix_fmt="yuv444p")
    process_video(src, tmp_path / "odd.mp4", FakeSegmenter())
    frames, container = decode(tmp_path / "odd.mp4")
    assert (container.streams.video[0].width, container.streams.video[0].height) == (66, 50)
    assert len(frames) == 5
    process_video(src, tmp_path / "odd.webm", FakeSegmenter())
    frames, container = decode(tmp_path / "odd.webm", codec="libvpx-vp9")
    assert (frames[0].width, frames[0].height) == (65, 49) and len(frames) == 5


def test_rotated_input_is_turned_upright(tmp_path):
    src, out = tmp_path / "phone.mp4", tmp_path / "mask.mp4"
    masks = make_clip(src, w=96, h=64, n=4, rotation=90)
    with VideoReader(src) as reader:
        assert reader.info.rotation == 90 and (reader.info.width, reader.info.height) == (64, 96)
    process_video(src, out, FakeSegmenter(), VideoOptions(output_kind="mask", smooth=False))
    frames, _ = decode(out)
    assert (frames[0].width, frames[0].height) == (64, 96)
    for frame, truth in zip(frames, masks, strict=True):
        assert iou(frame.to_ndarray(format="gray") > 128, np.rot90(truth)) > 0.85


def test_apply_rotation_turns_counter_clockwise():
    img = np.zeros((2, 3, 3), np.uint8)
    img[0, 0] = 255  # top-left
    assert apply_rotation(img, 0) is img
    assert apply_rotation(img, 90).shape == (3, 2, 3) and apply_rotation(img, 90)[2, 0, 0] == 255  # bottom-left
    assert apply_rotation(img, 180)[1, 2, 0] == 255
    assert apply_rotation(img, -90)[0, 1, 0] == 255  # = 270: top-right


def test_variable_frame_rate_timestamps_are_kept(tmp_path):
    src, out = tmp_path / "vfr.mp4", tmp_path / "out.mp4"
    times_ms = [0, 100, 150, 400, 500, 520]
    with av.open(str(src), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(frames_for(48, 64, 6)[0][i], format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    process_video(src, out, FakeSegmenter())
    frames, _ = decode(out)
    assert [round(f.time * 1000) for f in frames] == times_ms


@pytest.mark.parametrize("pattern", ["seq/*.png", "seq/img_%03d.png"])
def test_image_sequence_input(tmp_path, pattern):
    (tmp_path / "seq").mkdir()
    images, masks = frames_for(48, 64, 5)
    for i, img in enumerate(images):
        cv2.imwrite(str(tmp_path / "seq" / f"img_{i + 1:03d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert len(expand_sequence(tmp_path / pattern)) == 5
    out = tmp_path / "mask.mp4"
    result = process_video(tmp_path / pattern, out, FakeSegmenter(), VideoOptions(output_kind="mask", sequence_fps=10))
    frames, container = decode(out)
    assert result.info.is_sequence and len(frames) == 5 and container.streams.video[0].average_rate == 10
    assert iou(frames[-1].to_ndarray(format="gray") > 128, masks[-1]) > 0.85


def test_background_video_is_looped(tmp_path):
    src, bg, out = tmp_path / "in.mp4", tmp_path / "bg.mkv", tmp_path / "out.mp4"
    make_clip(src, n=8)
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    with av.open(str(bg), "w") as container:
        stream = container.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 32, 20, "yuv444p"
        for c in colors:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((20, 32, 3), c, np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    process_video(src, out, FakeSegmenter(), VideoOptions(background=Background(video=bg)))
    frames, _ = decode(out)
    assert len(frames) == 8
    corners = [int(np.argmax(f.to_ndarray(format="rgb24")[3, 3])) for f in frames]
    assert corners == [0, 1, 2, 0, 1, 2, 0, 1]


def test_batches_are_used(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, n=7)
    fake = FakeSegmenter()
    process_video(src, tmp_path / "m.mp4", fake, VideoOptions(output_kind="mask", batch_size=3))
    assert fake.batches == [3, 3, 1]


def test_internal_size_shrinks_the_network_input_but_not_the_output(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "mask.mp4"
    masks = make_clip(src, n=4)
    seen = []

    class Recording(FakeSegmenter):
        def predict_lowres(self, images):
            seen.extend(img.shape[:2] for img in images)
            return super().predict_lowres(images)

    process_video(src, out, Recording(), VideoOptions(output_kind="mask", internal_size=48, smooth=False))
    assert set(seen) == {(32, 48)}
    frames, _ = decode(out)
    assert (frames[0].width, frames[0].height) == (96, 64)
    assert iou(frames[-1].to_ndarray(format="gray") > 128, masks[-1]) > 0.8


def test_real_model_runs_end_to_end(tmp_path):
    import personseg

    src, out = tmp_path / "in.mp4", tmp_path / "out.webm"
    make_clip(src, w=64, h=48, n=3, audio=True)
    model = personseg.load_model("personseg-fast", threads=1)
    result = process_video(src, out, model, VideoOptions(batch_size=2))
    frames, container = decode(out, codec="libvpx-vp9")
    assert result.frames == 3 and len(frames) == 3 and frames[0].format.name == "yuva420p"
    assert len(container.streams.audio) == 1


# --- bad inputs, errors and interrupts ----------------------------------------------------------------------


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*sound.encode(frame), *sound.encode(None)]:
            container.mux(packet)


def _truncated(path: Path) -> None:
    make_clip(path.with_suffix(".full.mp4"), n=12)
    data = path.with_suffix(".full.mp4").read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_INPUTS = {
    "audio_only.m4a": _audio_only,
    "truncated.mp4": _truncated,
    "empty.mp4": lambda p: p.write_bytes(b""),
    "notes.txt": lambda p: p.write_text("this is not a video\n" * 20),
    "missing.mp4": lambda p: None,
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_clear_error_and_no_output(tmp_path, name, capsys):
    src = tmp_path / name
    BAD_INPUTS[name](src)
    out = tmp_path / "out" / "result.mp4"
    with pytest.raises(VideoError, match=name.replace(".", r"\.")) as info:
        process_video(src, out, FakeSegmenter())
    assert "\n" not in str(info.value) and isinstance(info.value, ValueError)
    assert not out.exists()
    code = main(["video", str(src), str(out), "--model", "personseg-fast", "--threads", "1", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and name in err[0] and err[0].startswith("personseg video:")
    assert not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))


@pytest.mark.parametrize(("output", "kind"), [("out.mp4", None), ("out.webm", None), ("frames", "png-seq")])
def test_interrupt_leaves_a_playable_file_or_nothing(tmp_path, output, kind):
    src, out = tmp_path / "in.mp4", tmp_path / output
    make_clip(src, n=12, audio=True)
    with pytest.raises(KeyboardInterrupt):
        process_video(src, out, FakeSegmenter(fail_after=6), VideoOptions(output_kind=kind, batch_size=2))
    assert no_leftovers(tmp_path)
    if out.is_dir():
        assert 1 <= len(list(out.glob("frame_*.png"))) <= 6
    elif out.exists():
        frames, container = decode(out)
        assert 1 <= len(frames) <= 6
        assert len(container.streams.audio) == 1
    # Interrupted before the first frame: nothing at all.
    with pytest.raises(KeyboardInterrupt):
        process_video(src, tmp_path / "none.mp4", FakeSegmenter(fail_after=0))
    assert not (tmp_path / "none.mp4").exists() and no_leftovers(tmp_path)


def test_error_mid_run_deletes_the_output(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src)
    with pytest.raises(RuntimeError):
        process_video(src, out, FakeSegmenter(fail_after=5, error=RuntimeError), VideoOptions(batch_size=1))
    assert not out.exists() and no_leftovers(tmp_path)


def test_options_are_validated():
    with pytest.raises(ValueError, match="give one background, not color and blur"):
        VideoOptions(background=Background(color=(1, 2, 3), blur=5))
    with pytest.raises(ValueError, match="batch_size"):
        VideoOptions(batch_size=0)
    with pytest.raises(ValueError, match="output_kind"):
        VideoOptions(output_kind="gif")


# --- CLI ------------------------------------------------------------------------------------------------------


def test_cli_video_infers_the_kind_and_refuses_to_overwrite(tmp_path, capsys):
    src, out = tmp_path / "in.mp4", tmp_path / "mask.mp4"
    make_clip(src, w=64, h=48, n=3)
    args = ["video", str(src), str(out), "--model", "personseg-fast", "--threads", "1", "-q"]
    assert main([*args, "--output-kind", "mask", "--batch", "2", "--smooth", "0.5"]) == 0
    frames, _ = decode(out)
    assert len(frames) == 3
    assert main([*args, "--output-kind", "mask"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--output-kind", "webm-alpha"]) == 2  # an .mp4 cannot hold alpha
    assert main(["video", str(src), str(tmp_path / "x.gif"), "-q"]) == 2
    assert not (tmp_path / "x.gif").exists()


def test_live_runs_headless_on_a_file(tmp_path, capsys):
    src, out = tmp_path / "clip.mp4", tmp_path / "live.mp4"
    make_clip(src, w=64, h=48, n=8)
    code = main(
        ["live", "--camera", str(src), "--no-window", "--max-frames", "5", "--output", str(out)]
        + ["--model", "personseg-fast", "--threads", "1", "--bg-color", "white"]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    frames, _ = decode(out)
    assert len(frames) == 5 and (frames[0].width, frames[0].height) == (64, 48)
    assert no_leftovers(tmp_path)
    # The rate overall and the steady one after the first frame's warm-up, which video_bench.py reads.
    found = re.search(r"5 frames in ([\d.]+) s \(([\d.]+) fps; ([\d.]+) fps after the first frame\)", err)
    assert found is not None, err
    assert float(found.group(2)) > 0 and float(found.group(3)) > 0


def test_live_reports_a_missing_camera(tmp_path, capsys):
    code = main(["live", "--camera", str(tmp_path / "nope.mp4"), "--no-window", "--model", "personseg-fast"])
    assert code == 2 and "nope.mp4" in capsys.readouterr().err


def test_virtual_camera_needs_pyvirtualcam():
    pytest.importorskip("personseg.cli.live")
    try:
        import pyvirtualcam  # noqa: F401
    except ImportError:
        from personseg.cli.live import open_virtual_camera

        with pytest.raises(ImportError, match="pip install"):
            open_virtual_camera(64, 48, 30)
    else:
        pytest.skip("pyvirtualcam is installed")


# --- signals: no partial file outlives the process (issue 15) --------------------------------------------------


@pytest.mark.parametrize("kind", ["out.mp4", "frames"])
def test_sigterm_mid_run_leaves_no_partial_file(tmp_path, kind):
    import signal
    import subprocess
    import sys

    src, out = tmp_path / "in.mp4", tmp_path / kind
    make_clip(src, w=160, h=120, n=400)
    cmd = [sys.executable, "-m", "personseg", "video", str(src), str(out), "-m", "personseg-fast", "--threads", "1"]
    proc = subprocess.Popen([*cmd, "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".*partial*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".*partial*")), "the run never started writing"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert not out.exists() and no_leftovers(tmp_path)


def test_a_killed_runs_partial_is_removed_by_the_next_run(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is now free: the run "was killed"
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, n=3)
    stale = tmp_path / f".out.partial-{dead.pid}-abcd1234.mp4"
    stale.write_bytes(b"half a video")
    stale_dir = tmp_path / f".frames.partial-{dead.pid}-abcd1234"
    stale_dir.mkdir()
    (stale_dir / "frame_000001.png").write_bytes(b"x")
    alive = tmp_path / f".out.partial-{os.getpid()}-efgh5678.mp4"  # a run still going (this process): kept
    alive.write_bytes(b"in progress")
    process_video(src, out, FakeSegmenter())
    process_video(src, tmp_path / "frames", FakeSegmenter(), VideoOptions(output_kind="png-seq"))
    assert out.exists() and not stale.exists() and not stale_dir.exists() and alive.exists()


# --- issue 14: the flow stabiliser by default, --stabilizer, --subject main across frames -----------------------


def two_people_frames(n: int, appear: int, h: int = 96, w: int = 160) -> list[np.ndarray]:
    """A person on the right; from frame ``appear`` a bigger one nearer the centre on the left, never touching."""
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        img = rng.normal(40, 6, (h, w, 3))
        img[20:90, 110:135] = 215  # the first person
        if i >= appear:
            img[5:95, 30:80] = 215  # walks in: bigger and more central, so they would win a photo's choice
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


@pytest.fixture()
def fake_model(monkeypatch):
    """The CLI's model loader returns a :class:`FakeSegmenter` (brightness, exact and fast)."""
    from personseg.cli import options

    monkeypatch.setattr(options, "load_model_from_args", lambda args: FakeSegmenter())


@pytest.mark.parametrize("subject", ["all", "main"])
def test_subject_main_stays_on_the_same_person_across_frames(tmp_path, fake_model, subject):
    (tmp_path / "seq").mkdir()
    for i, img in enumerate(two_people_frames(8, appear=3)):
        cv2.imwrite(str(tmp_path / "seq" / f"{i:03d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = tmp_path / "frames"
    assert main(["video", str(tmp_path / "seq" / "*.png"), str(out), "--subject", subject, "-q"]) == 0
    alphas = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED)[..., 3] for p in sorted(out.glob("frame_*.png"))]
    assert len(alphas) == 8
    for i, alpha in enumerate(alphas):
        assert alpha[30:80, 115:130].min() > 200, i  # the first person, always
        newcomer = alpha[15:85, 40:70]
        if subject == "main" or i < 3:
            assert newcomer.max() == 0, i
        else:
            assert newcomer.min() > 200, i


def test_the_subject_is_chosen_afresh_where_the_stabiliser_restarts():
    from personseg.inference.remove import RemoveOptions
    from personseg.video.pipeline import FrameProcessor

    processor = FrameProcessor(FakeSegmenter(), VideoOptions(remove=RemoveOptions(subject="main")), "mask")
    first, both = two_people_frames(2, appear=1)

    def alpha(rgb: np.ndarray, restarted: bool) -> np.ndarray:
        low = FakeSegmenter().predict_lowres([rgb])[0]
        return processor.finish(rgb, low, restarted)

    assert alpha(first, True)[50, 120] == 255
    kept = alpha(both, False)
    assert kept[50, 120] == 255 and kept[50, 55] == 0
    fresh = alpha(both, True)  # a scene cut: the best-scoring person of the new shot
    assert fresh[50, 55] == 255 and fresh[50, 120] == 0


STABILIZER_FLAGS = [([], "FlowStabilizer"), (["--stabilizer", "flow"], "FlowStabilizer")]
STABILIZER_FLAGS += [(["--stabilizer", "plain"], "Stabilizer"), (["--no-smooth"], "NoneType")]


@pytest.mark.parametrize("command", ["video", "live"])
@pytest.mark.parametrize("flags, made", STABILIZER_FLAGS)
def test_stabilizer_choice_reaches_the_pipeline(tmp_path, fake_model, monkeypatch, command, flags, made):
    from personseg.video import pipeline

    built = []
    real = pipeline.make_stabilizer
    monkeypatch.setattr(pipeline, "make_stabilizer", lambda o: built.append(real(o)) or built[-1])
    src = tmp_path / "clip.mp4"
    make_clip(src, n=4)
    if command == "video":
        args = ["video", str(src), str(tmp_path / "out.mp4"), "-q"]
    else:
        args = ["live", "--camera", str(src), "--no-window", "--max-frames", "3"]
    assert main(args + flags) == 0
    assert [type(s).__name__ for s in built] == [made]


def test_stabilizer_option_is_validated():
    with pytest.raises(ValueError, match="stabilizer: 'median' is not one of flow, plain"):
        VideoOptions(stabilizer="median")


# --- the non-causal window and the video's edge ------------------------------------------------------------------


@pytest.mark.parametrize(("window", "smooth", "late"), [(2, True, 2), (3, True, 3), (0, True, 0), (2, False, 0)])
def test_frame_processor_hands_frames_back_window_late_in_order(window, smooth, late):
    from personseg.video.pipeline import FrameProcessor

    processor = FrameProcessor(FakeSegmenter(), VideoOptions(window=window, smooth=smooth), "mask")
    frames, _ = frames_for(48, 64, 8)
    ready = [[tag for tag, _ in processor.push(i, rgb, *processor.predict([rgb])[0])] for i, rgb in enumerate(frames)]
    assert ready == [[]] * late + [[i] for i in range(8 - late)]
    assert [tag for tag, _ in processor.flush()] == list(range(8 - late, 8))


def test_the_causal_path_holds_no_window():
    """`personseg live` calls the processor frame by frame (finish): no flow window is built for it."""
    from personseg.video.pipeline import FrameProcessor

    processor = FrameProcessor(FakeSegmenter(), VideoOptions(window=3), "mask")
    frames, _ = frames_for(48, 64, 3)
    assert all(processor(rgb).shape == (48, 64) for rgb in frames)
    assert processor.window is None and processor.flush() == []
    processor.push(0, frames[0], *processor.predict([frames[0]])[0])
    assert processor.window is not None and processor.window.radius == 3


@pytest.mark.parametrize(("flags", "window"), [([], 6), (["--window", "4"], 4), (["--window", "0"], 0)])
def test_window_choice_reaches_the_pipeline(tmp_path, fake_model, monkeypatch, flags, window):
    from personseg.video import pipeline
    from personseg.video import window as windows

    made = []
    monkeypatch.setattr(pipeline, "FlowWindow", lambda radius: made.append(radius) or windows.FlowWindow(radius))
    src, out = tmp_path / "clip.mp4", tmp_path / "out.mp4"
    masks = make_clip(src, n=6)
    assert main(["video", str(src), str(out), "-q", *flags]) == 0
    assert made == ([window] if window else [])
    frames, _ = decode(out)
    assert len(frames) == len(masks)  # the window's last frames are flushed, none lost


def test_video_and_live_keep_a_tighter_edge_than_photos():
    import argparse

    from personseg.cli import options
    from personseg.cli.video import add_frame_options, video_options_from_args
    from personseg.video.pipeline import VIDEO_EDGE_CUTOFF

    assert VideoOptions().remove.edge_cutoff == VIDEO_EDGE_CUTOFF == 0.45
    video = argparse.ArgumentParser()
    add_frame_options(video)
    assert video_options_from_args(video.parse_args([])).remove.edge_cutoff == 0.45
    assert video_options_from_args(video.parse_args(["--edge-cutoff", "0.1"])).remove.edge_cutoff == 0.1
    photo = argparse.ArgumentParser()
    options.add_photo_options(photo)
    assert options.remove_options_from_args(photo.parse_args([])).edge_cutoff == 0.1
