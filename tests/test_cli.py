"""The ``personseg`` command itself: extras named in one line, quiet default logs, fast listings, run clock."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from personseg.cli import log_level
from personseg.cli.models import ARCHITECTURES
from personseg.training import trainer

REPO = Path(__file__).resolve().parents[1]


HIDE = """
class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, _Hide())
"""


def hide(*modules: str) -> str:
    """Code that makes ``modules`` uninstalled for the rest of the interpreter's life, as pip would leave it."""
    return f"HIDDEN = {set(modules)!r}\n{HIDE}"


def run_cli(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` (which may hide modules) then ``personseg ARGS`` in a fresh interpreter."""
    script = f"import sys\n{code}\nfrom personseg.cli import main\nsys.exit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.parametrize(
    ("hidden", "args", "extra"),
    [
        ("yaml", ["train", "--help"], "train"),
        ("torch", ["train", "--epochs", "1"], "train"),
        ("torch", ["export", "--checkpoint", "x.pt", "--output", "x.onnx"], "train"),
        ("av", ["video", "in.mp4", "out.mp4"], "video"),
        ("fastapi", ["serve"], "serve"),
        ("gradio", ["ui"], "ui"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(hidden, args, extra):
    result = run_cli(hide(hidden), *args)
    assert result.returncode in (1, 2), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"pip install 'personseg[{extra}]'" in lines[0] and "Traceback" not in result.stderr


INFERENCE_ONLY = hide("torch", "torchvision", "yaml", "albumentations", "av", "fastapi", "gradio", "timm", "ray")


@pytest.mark.parametrize(
    "args",
    [["models"], ["data", "list"], ["remove", "--help"], ["evaluate", "--help"], ["--help"]],
)
def test_inference_only_install_runs_these_subcommands(args):
    result = run_cli(INFERENCE_ONLY, *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_inference_only_evaluate_scores_a_folder(tmp_path):
    import numpy as np
    from PIL import Image

    from synthetic import person

    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for i in range(2):
        img, mask = person(64, 48, seed=i)
        Image.fromarray(img).save(tmp_path / "images" / f"p{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "masks" / f"p{i}.png")
    result = run_cli(INFERENCE_ONLY, "evaluate", "--model", "personseg-fast", "--data", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "iou" in result.stdout.lower()


def test_remove_on_ray_without_the_extra_names_it(tmp_path):
    photo = REPO / "src" / "personseg" / "assets" / "astronaut.png"
    result = run_cli(INFERENCE_ONLY, "remove", str(photo), "-o", str(tmp_path / "out"), "--ray")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "personseg remove: --ray needs Ray Data: pip install 'personseg[ray]'"
    assert not (tmp_path / "out").exists()


def test_models_lists_architectures_without_importing_torch():
    result = run_cli("", "models")
    assert result.returncode == 0
    assert "personseg-default" in result.stdout and "deeplabv3plus" in result.stdout
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom personseg.cli import main\nmain(['models'])\nprint('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.stdout.strip().splitlines()[-1] == "False"


def test_listed_architectures_are_the_registered_ones():
    from personseg.models import list_architectures

    assert sorted(ARCHITECTURES) == list_architectures()


def test_log_levels_quiet_by_default_progress_for_train():
    assert log_level("remove", 0) == logging.WARNING
    assert log_level("remove", 1) == logging.INFO
    assert log_level("remove", 2) == logging.DEBUG
    assert log_level("train", 0) == logging.INFO
    assert log_level("train", 0, quiet=True) == logging.WARNING


def test_plain_remove_logs_nothing_at_info(tmp_path):
    photo = REPO / "src" / "personseg" / "assets" / "astronaut.png"
    result = run_cli("", "remove", str(photo), "-o", str(tmp_path), "--model", "personseg-fast")
    assert result.returncode == 0, result.stderr
    assert "INFO" not in result.stderr
    assert any(tmp_path.iterdir())


def test_run_clock_warns_once_about_a_long_run_with_an_eta(monkeypatch, caplog):
    now = iter([0.0, 5.0, 35.0, 65.0, 95.0, 125.0, 155.0])  # construction, then 30 s per step after warm-up
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: next(now))
    clock = trainer.RunClock(steps_per_epoch=100, epochs_left=2, device=trainer.torch.device("cpu"))
    with caplog.at_level(logging.WARNING, logger="personseg.training.trainer"):
        for _ in range(6):
            clock.step()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "30.0 s per step" in warnings[0] and "about 50 min per epoch" in warnings[0] and "1h40m" in warnings[0]
    assert clock.eta() == "1h37m"  # 194 steps left x 30 s


def test_run_clock_is_silent_for_short_runs(monkeypatch, caplog):
    now = iter(float(i) for i in range(10))  # 1 s per step
    monkeypatch.setattr(trainer.time, "perf_counter", lambda: next(now))
    clock = trainer.RunClock(steps_per_epoch=10, epochs_left=1, device=trainer.torch.device("cpu"))
    with caplog.at_level(logging.WARNING, logger="personseg.training.trainer"):
        for _ in range(5):
            clock.step()
    assert not caplog.records
    assert clock.eta() == "0m05s"


def test_live_without_a_camera_says_so_in_one_line():
    result = run_cli("", "live", "--camera", "7", "--no-window")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "personseg live: camera 7: cannot open it (no such camera, file or stream; try another --camera)"
    ]
