"""``personseg remove`` and the seed's ``inference.py``: inputs, outputs, batches with bad files, errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from personseg.cli import main
from personseg.inference import registry
from synthetic import iou, person, two_people

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def photos(tmp_path) -> Path:
    """photos/a.jpg (80x60), photos/b.png (70x50), photos/sub/c.png (40x40) and a text file."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(person(60, 80, seed=1)[0]).save(folder / "a.jpg", quality=95)
    Image.fromarray(person(50, 70, seed=2)[0]).save(folder / "b.png")
    Image.fromarray(person(40, 40, seed=3)[0]).save(folder / "sub" / "c.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture()
def cli(tiny_model):
    def run(*args: str) -> int:
        model = ["-m", str(tiny_model.onnx), "--provider", "cpu", "--threads", "1", "-q"]
        return main(["remove", *map(str, args), *model])

    return run


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_default_outputs_sizes_and_alpha(cli, photos, tmp_path, capsys) -> None:
    out = tmp_path / "results"
    assert cli(photos / "a.jpg", "-o", out) == 0
    assert _files(out) == ["a_comparison.jpg", "a_cutout.png", "a_mask.png", "a_original.jpg"]
    original, mask = Image.open(out / "a_original.jpg"), Image.open(out / "a_mask.png")
    cutout, comparison = Image.open(out / "a_cutout.png"), Image.open(out / "a_comparison.jpg")
    assert original.size == mask.size == cutout.size == (80, 60)
    assert mask.mode == "L" and cutout.mode == "RGBA" and comparison.size == (240, 60)
    np.testing.assert_array_equal(np.asarray(cutout)[..., 3], np.asarray(mask))
    truth = person(60, 80, seed=1)[1]
    assert iou(np.asarray(mask) >= 128, truth) > 0.9
    assert "done 1, failed 0" in capsys.readouterr().err
    assert _no_temp_files(out)


def test_a_checkpoint_runs_on_the_device_flag(tiny_model, photos, tmp_path, monkeypatch) -> None:
    from personseg.inference import api

    calls, real = [], api.load_model
    monkeypatch.setattr(api, "load_model", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    argv = ["remove", str(photos / "b.png"), "-o", str(tmp_path / "o"), "--outputs", "mask", "-q"]
    assert main([*argv, "-m", str(tiny_model.checkpoint), "--device", "cpu"]) == 0
    assert calls[0]["device"] == "cpu" and calls[0]["providers"] is None
    assert (tmp_path / "o" / "b_mask.png").is_file()


def test_selected_outputs_and_background_replacements(cli, photos, tmp_path) -> None:
    out = tmp_path / "o"
    assert cli(photos / "b.png", "-o", out, "--outputs", "mask,cutout") == 0
    assert _files(out) == ["b_cutout.png", "b_mask.png"]
    assert cli(photos / "b.png", "-o", out, "--outputs", "replaced", "--bg-color", "0,255,0") == 0
    green = np.asarray(Image.open(out / "b_replaced.jpg"))
    assert green.shape == (50, 70, 3) and abs(int(green[1, 1, 1]) - 255) < 8 and green[1, 1, 0] < 8
    assert cli(photos / "b.png", "-o", out / "t", "--outputs", "replaced", "--bg-color", "#0000ff80") == 0
    see_through = Image.open(out / "t" / "b_replaced.png")
    assert see_through.mode == "RGBA" and see_through.getpixel((1, 1)) == (0, 0, 255, 128)
    bg = tmp_path / "bg.png"
    Image.new("RGB", (30, 10), (250, 0, 250)).save(bg)
    assert cli(photos / "b.png", "-o", out / "i", "--bg-image", bg) == 0
    assert "b_replaced.jpg" in _files(out / "i") and len(_files(out / "i")) == 5
    assert np.abs(np.asarray(Image.open(out / "i" / "b_replaced.jpg"))[1, 1].astype(int) - (250, 0, 250)).max() < 10
    assert cli(photos / "b.png", "-o", out / "blur", "--bg-blur", "--outputs", "replaced") == 0
    assert Image.open(out / "blur" / "b_replaced.jpg").size == (70, 50)


def test_crop_outputs(cli, tmp_path) -> None:
    img, mask = person(100, 200, center=(50, 150), radius=25, seed=4)
    Image.fromarray(img).save(tmp_path / "p.png")
    assert cli(tmp_path / "p.png", "-o", tmp_path / "o", "--crop", "--crop-margin", "0.1") == 0
    width, height = Image.open(tmp_path / "o" / "p_cutout.png").size
    assert 50 < width < 70 and 50 < height < 70
    assert Image.open(tmp_path / "o" / "p_original.png").size == (width, height)
    assert Image.open(tmp_path / "o" / "p_comparison.jpg").size == (3 * width, height)


def test_folder_recursive_and_glob(cli, photos, tmp_path, capsys) -> None:
    assert cli(photos, "-o", tmp_path / "flat", "--outputs", "mask") == 0
    assert _files(tmp_path / "flat") == ["a_mask.png", "b_mask.png"]
    assert cli(photos, "-r", "-o", tmp_path / "deep", "--outputs", "mask") == 0
    assert _files(tmp_path / "deep") == ["a_mask.png", "b_mask.png", "sub/c_mask.png"]
    assert Image.open(tmp_path / "deep" / "sub" / "c_mask.png").size == (40, 40)
    assert cli(str(photos / "**" / "*.png"), "-o", tmp_path / "glob", "--outputs", "mask") == 0
    assert _files(tmp_path / "glob") == ["b_mask.png", "c_mask.png"]
    assert cli(str(photos / "*.webp"), "-o", tmp_path / "none") == 1
    assert "no file matches" in capsys.readouterr().err


def test_outputs_inside_the_input_folder_are_not_inputs(cli, photos) -> None:
    assert cli(photos, "-r", "-o", photos / "results", "--outputs", "mask") == 0
    assert cli(photos, "-r", "-o", photos / "results", "--outputs", "mask") == 0
    assert _files(photos / "results") == ["a_mask.png", "b_mask.png", "sub/c_mask.png"]


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


def test_stdin_to_folder_and_to_stdout(cli, photos, tmp_path, monkeypatch, capsysbinary) -> None:
    data = (photos / "a.jpg").read_bytes()
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    assert cli("-", "-o", tmp_path / "o") == 0
    assert _files(tmp_path / "o") == [
        "stdin_comparison.jpg",
        "stdin_cutout.png",
        "stdin_mask.png",
        "stdin_original.png",
    ]
    capsysbinary.readouterr()
    monkeypatch.setattr(sys, "stdin", _Stdin(data))
    assert cli("-", "-o", "-") == 0
    cut = Image.open(io.BytesIO(capsysbinary.readouterr().out))
    assert cut.format == "PNG" and cut.mode == "RGBA" and cut.size == (80, 60)
    assert cli(photos / "b.png", "-o", "-", "--outputs", "mask") == 0
    mask = Image.open(io.BytesIO(capsysbinary.readouterr().out))
    assert mask.mode == "L" and mask.size == (70, 50)


def test_stdout_takes_one_image_and_one_kind(cli, photos, capsys) -> None:
    assert cli(photos / "a.jpg", photos / "b.png", "-o", "-") == 2
    assert "one image" in capsys.readouterr().err
    assert cli(photos / "a.jpg", "-o", "-", "--outputs", "mask", "cutout") == 2
    assert "one kind" in capsys.readouterr().err
    assert cli(photos / "notes.txt", "-o", "-") == 1
    err = capsys.readouterr()
    assert err.out == "" and "notes.txt: not an image" in err.err


def test_skip_existing(cli, photos, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    assert cli(photos, "-o", out) == 0
    stamp = (out / "a_mask.png").stat().st_mtime_ns
    (out / "b_cutout.png").unlink()
    capsys.readouterr()
    assert cli(photos, "-o", out, "--skip-existing") == 0
    assert "done 1, failed 0, skipped 1" in capsys.readouterr().err
    assert (out / "a_mask.png").stat().st_mtime_ns == stamp and (out / "b_cutout.png").exists()


def test_batch_continues_past_bad_files_and_reports_them(cli, photos, tmp_path, capsys) -> None:
    bad = photos / "broken.jpg"
    bad.write_bytes((photos / "a.jpg").read_bytes()[:200])
    empty = photos / "empty.png"
    empty.write_bytes(b"")
    out = tmp_path / "o"
    code = cli(
        photos / "a.jpg", bad, photos / "notes.txt", empty, photos / "b.png", tmp_path / "missing.jpg", "-o", out
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "done 2, failed 4" in err
    failures = [line for line in err.splitlines() if line.strip().startswith("failed:")]
    assert len(failures) == 4
    for name in ("broken.jpg", "notes.txt", "empty.png", "missing.jpg"):
        assert sum(name in line for line in failures) == 1, name
    assert {f.split("_")[0] for f in _files(out)} == {"a", "b"} and len(_files(out)) == 8
    assert _no_temp_files(out)


def test_too_large_and_name_collisions(cli, photos, tmp_path, capsys) -> None:
    assert cli(photos / "a.jpg", "-o", tmp_path / "o", "--max-pixels", "1000") == 1
    assert "over the 0.001 MP limit" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    Image.fromarray(person(30, 30)[0]).save(tmp_path / "other" / "b.png")
    assert cli(photos / "b.png", tmp_path / "other" / "b.png", "-o", tmp_path / "c") == 1
    assert "would overwrite those of" in capsys.readouterr().err


def test_unwritable_output_fails_before_any_work(photos, tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # A model that does not exist: the folder error must come first, before the model is even looked at.
    code = main(["remove", str(photos / "a.jpg"), "-o", str(blocker / "out"), "-m", str(tmp_path / "nope.onnx")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write to the output folder" in err[0] and str(blocker / "out") in err[0]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_output_folder(cli, photos, tmp_path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert cli(photos / "a.jpg", "-o", locked) == 2
        assert "cannot write to the output folder" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_usage_errors_are_one_line(cli, photos, tmp_path, capsys, monkeypatch) -> None:
    assert cli("-o", tmp_path / "o") == 2
    assert "no input" in capsys.readouterr().err
    assert cli(photos / "a.jpg", "-o", tmp_path / "o", "--threshold", "2") == 2
    assert "threshold" in capsys.readouterr().err
    assert cli(photos / "a.jpg", "-o", tmp_path / "o", "--outputs", "replaced") == 2
    assert "--bg-color" in capsys.readouterr().err
    assert cli(photos / "a.jpg", "-o", tmp_path / "o", "--outputs", "thumbnail") == 2
    assert "unknown kind thumbnail" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(photos / "a.jpg", "--bg-color", "0,0,0", "--bg-blur", "3")
    capsys.readouterr()
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "empty")
    assert main(["remove", str(photos / "a.jpg"), "-o", str(tmp_path / "o2"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'personseg-default' is not installed" in err[0]
    assert not (tmp_path / "o2").exists() or _files(tmp_path / "o2") == []


def test_seed_inference_script_works_from_anywhere_without_torch(tiny_model, photos, tmp_path) -> None:
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['inference.py', '--image', {str(photos / 'a.jpg')!r}, '--output', 'results/',"
        f" '--model', {str(tiny_model.onnx)!r}, '--threads', '1']\n"
        "try:\n"
        f"    runpy.run_path({str(REPO / 'inference.py')!r}, run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert 'torch' not in sys.modules, 'personseg remove imported torch'\n"
        "    raise\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert _files(tmp_path / "results") == ["a_comparison.jpg", "a_cutout.png", "a_mask.png", "a_original.jpg"]


# --- issue 15: hostile and careless inputs ---------------------------------------------------------------------


def test_a_panorama_keeps_every_output_and_a_small_comparison(cli, tmp_path, capfd) -> None:
    wide = tmp_path / "wide.jpg"
    Image.fromarray(person(20, 22000)[0]).save(wide, quality=90)
    assert cli(wide, "-o", tmp_path / "o") == 0
    assert _files(tmp_path / "o") == ["wide_comparison.jpg", "wide_cutout.png", "wide_mask.png", "wide_original.jpg"]
    with Image.open(tmp_path / "o" / "wide_comparison.jpg") as strip:
        assert strip.width <= 8192 + 3 and strip.height >= 1
    err = capfd.readouterr().err
    assert "[ERROR" not in err and "could not encode" not in err


def test_a_full_disk_leaves_none_of_the_images_outputs(cli, photos, tmp_path, capsys, monkeypatch) -> None:
    import errno

    real_fdopen = os.fdopen
    written = []

    class FullDisk(io.BufferedWriter):
        def write(self, data) -> int:  # the third output file hits a full disk
            if len(written) >= 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            written.append(len(data))
            return super().write(data)

    def fdopen(fd, mode="r", *args, **kwargs):
        if "w" in mode:
            return FullDisk(io.FileIO(fd, "w"))
        return real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)
    out = tmp_path / "o"
    assert cli(photos / "a.jpg", "-o", out) == 1
    err = capsys.readouterr().err
    assert "failed 1" in err and "No space left" in err
    assert _files(out) == []  # no _original / _mask without the rest, and no temp files


def test_folder_reports_link_loops_and_folders_named_like_images(cli, photos, tmp_path, capsys) -> None:
    (photos / "loop.jpg").symlink_to(photos / "loop.jpg")
    (photos / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (photos / "album.jpg").mkdir()
    out = tmp_path / "o"
    assert cli(photos, "-o", out) == 1
    err = capsys.readouterr().err
    assert "loop.jpg: a symbolic link loop" in err and "gone.png: a symbolic link to nothing" in err
    assert "album.jpg: a directory, not an image" in err
    assert "done 2, failed 3" in err


def test_folder_takes_every_format_pillow_reads(cli, tmp_path, capsys) -> None:
    from personseg.inference.batch import image_extensions

    folder = tmp_path / "in"
    folder.mkdir()
    img = Image.fromarray(person(48, 64)[0])
    saved = []
    for ext, fmt in ((".ico", "ICO"), (".jp2", "JPEG2000"), (".avif", "AVIF"), (".tga", "TGA")):
        if ext not in image_extensions():
            continue  # this Pillow build cannot read it
        try:
            img.save(folder / f"x{ext[1:]}{ext}", fmt)
        except (KeyError, OSError):  # cannot write it here
            continue
        saved.append(f"x{ext[1:]}")
    assert saved, "no optional format could be written"
    assert cli(folder, "-o", tmp_path / "o") == 0
    assert {f.split("_")[0] for f in _files(tmp_path / "o")} == set(saved)


def test_a_nan_threshold_is_a_clear_usage_error(cli, photos, tmp_path, capsys) -> None:
    assert cli(photos / "a.jpg", "-o", tmp_path / "o", "--threshold", "nan") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threshold: must be a finite number" in err[0]


def test_quiet_prints_no_info(tiny_model, photos, tmp_path) -> None:
    cmd = [sys.executable, "-m", "personseg", "remove", str(photos), "-o", str(tmp_path / "o"), "-q"]
    model = ["-m", str(tiny_model.onnx), "--provider", "cpu", "--threads", "1"]
    result = subprocess.run([*cmd, *model], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "INFO" not in result.stderr and "done 2, failed 0" in result.stderr


# --- issue 14: --subject; issue 16: -o - on a terminal, the comparison with a new background -----------------


@pytest.mark.parametrize("subject", ["all", "main"])
def test_subject_main_drops_the_person_at_the_edge(cli, tmp_path, subject) -> None:
    rgb, big, small = two_people()
    Image.fromarray(rgb).save(tmp_path / "two.png")
    assert cli(tmp_path / "two.png", "-o", tmp_path / "o", "--outputs", "mask", "--subject", subject) == 0
    mask = np.asarray(Image.open(tmp_path / "o" / "two_mask.png"))
    assert mask[big].mean() > 200
    assert (mask[small].max() == 0) if subject == "main" else (mask[small].mean() > 200)


def test_a_bad_subject_is_a_usage_error(cli, photos, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli(photos / "a.jpg", "-o", tmp_path / "o", "--subject", "largest")
    assert exc.value.code == 2 and "choose from 'all', 'main'" in capsys.readouterr().err


class _Terminal:
    """A stdout that is a terminal: nothing may be written to it."""

    @property
    def buffer(self):
        raise AssertionError("binary data written to a terminal")

    def isatty(self) -> bool:
        return True


def test_stdout_refuses_a_terminal(cli, photos, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdout", _Terminal())
    assert cli(photos / "a.jpg", "-o", "-") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stdout is a terminal" in err[0] and "> out.png" in err[0]


def test_comparison_shows_the_new_background(cli, photos, tmp_path) -> None:
    assert cli(photos / "b.png", "-o", tmp_path / "o", "--bg-color", "0,255,0") == 0
    strip = np.asarray(Image.open(tmp_path / "o" / "b_comparison.jpg")).astype(int)
    assert strip.shape == (50, 210, 3)
    corner = strip[:5, 140:145].reshape(-1, 3).mean(0)  # background of the third panel: green, not a checkerboard
    assert corner[1] > 230 and corner[0] < 25 and corner[2] < 25
    assert cli(photos / "b.png", "-o", tmp_path / "plain", "--outputs", "comparison") == 0
    board = np.asarray(Image.open(tmp_path / "plain" / "b_comparison.jpg")).astype(int)[:5, 140:145]
    assert abs(board[..., 0] - board[..., 1]).max() < 25  # grey checkerboard without a --bg-* option


def test_a_run_that_writes_nothing_leaves_no_empty_folders(tmp_path, capsys):
    from personseg.cli import main as cli

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"x")
    existing = tmp_path / "existing"
    existing.mkdir()
    assert cli(["remove", str(bad), "-o", str(tmp_path / "new" / "deeper")]) == 1
    assert not (tmp_path / "new").exists()
    assert "nothing written" in capsys.readouterr().err
    assert cli(["remove", str(bad), "-o", str(existing)]) == 1
    assert existing.is_dir()  # a folder that was there before stays


def test_several_images_at_once_write_the_same_files_and_report_in_order(tiny_model, photos, tmp_path, capsys):
    (photos / "broken.png").write_bytes(b"not an image")
    (photos / "empty.jpg").write_bytes(b"")
    outputs = {}
    for jobs in ("1", "3"):
        out = tmp_path / f"jobs{jobs}"
        args = ["remove", str(photos), "-r", "-o", str(out), "-m", str(tiny_model.onnx), "-q", "--jobs", jobs]
        assert main(args) == 1
        err = capsys.readouterr().err
        assert "done 3, failed 2" in err
        failed = [line.split("failed: ")[1] for line in err.splitlines() if "failed: " in line]
        assert [Path(line.split(":")[0]).name for line in failed] == ["broken.png", "empty.jpg"]  # input order
        outputs[jobs] = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert len(outputs["1"]) == 12 and outputs["1"] == outputs["3"]
    assert main(["remove", str(photos), "-o", str(tmp_path / "x"), "--jobs", "-1", "-q"]) == 2
    assert capsys.readouterr().err.strip() == "personseg remove: --jobs must be >= 0 (0: automatic), got -1"
