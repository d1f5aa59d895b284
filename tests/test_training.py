"""Training: config precedence and validation, a 2-image overfit, the seed command with resume, DDP, pictures.

Datasets are generated into tmp_path (a bright ellipse "person" on a dark noisy background); every run is
tiny (32 px, a 4-8 channel U-Net, one thread, no loader workers) so the whole file runs on a busy laptop.
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from personseg.cli import main as cli_main
from personseg.data.folder import PairedFolder
from personseg.data.mixture import EvalDataset
from personseg.data.transforms import eval_transform
from personseg.losses import get_loss
from personseg.models import load_checkpoint, read_checkpoint
from personseg.training import builders, trainer
from personseg.training.config import TrainConfig, add_config_arguments, config_from_args
from personseg.training.distributed import DistInfo
from personseg.training.visualization import plot_history, prediction_grid
from synthetic import person

REPO = Path(__file__).resolve().parents[1]


def make_folder(root: Path, n: int, seed: int = 0, size: tuple[int, int] = (36, 48)) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image, mask = person(*size, seed=seed + i)
        Image.fromarray(image).save(root / "images" / f"img{i}.jpg", quality=95)
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"img{i}.png")
    return root


def tiny_config(data: Path, val: Path, output: Path, **overrides) -> TrainConfig:
    values = {
        "data": [str(data)],
        "val_data": [str(val)],
        "output": str(output),
        "arch": "unet",
        "base_channels": 4,
        "input_size": 32,
        "batch_size": 2,
        "samples_per_epoch": 8,
        "epochs": 2,
        "workers": 0,
        "threads": 1,
        "vis_every": 0,
        "seed": 0,
        **overrides,
    }
    return TrainConfig(**values)


def flags(cfg: TrainConfig) -> list[str]:
    """Command-line flags that reproduce ``cfg`` (only the fields tiny_config sets)."""
    out = []
    for key in ("arch", "base_channels", "input_size", "batch_size", "samples_per_epoch", "epochs", "workers"):
        out += [f"--{key.replace('_', '-')}", str(getattr(cfg, key))]
    out += ["--threads", str(cfg.threads), "--vis-every", str(cfg.vis_every), "--seed", str(cfg.seed)]
    return out + ["--data", *cfg.data, "--val-data", *cfg.val_data, "--output", cfg.output]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def parse(argv: list[str]) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


# --------------------------------------------------------------------------- config


def test_defaults_then_yaml_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 7\nbatch-size: 3\nlr: 0.01\nskip_invalid: true\nmean: [0.5, 0.5, 0.5]\n")
    cfg = parse(["--config", str(path), "--epochs", "9", "--no-skip-invalid", "--data", "a", "b:0.5"])
    assert cfg.epochs == 9  # flag beats YAML
    assert cfg.batch_size == 3 and cfg.lr == 0.01  # YAML beats default (dashed keys work too)
    assert cfg.skip_invalid is False
    assert cfg.mean == [0.5, 0.5, 0.5]
    assert cfg.data == ["a", "b:0.5"]
    assert cfg.weight_decay == TrainConfig().weight_decay  # untouched default

    defaults = parse([])
    assert defaults == TrainConfig()
    assert parse(["--std", "1", "2", "3", "--base-channels", "8"]).std == [1.0, 2.0, 3.0]


def test_none_encoder_weights_spellings():
    assert parse(["--encoder-weights", "none"]).encoder_weights is None
    assert TrainConfig(encoder_weights="None").encoder_weights is None
    assert parse(["--encoder-weights", "efficientnet_lite"]).encoder_weights == "efficientnet_lite"


def test_unknown_yaml_key_is_named(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate") as info:
        TrainConfig.from_yaml(path)
    assert str(path) in str(info.value)


def test_unreadable_yaml_is_explained(tmp_path):
    (tmp_path / "list.yaml").write_text("- epochs\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        TrainConfig.from_yaml(tmp_path / "list.yaml")
    with pytest.raises(ValueError, match="cannot read"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("epochs", 0, "--epochs"),
        ("batch_size", 0, "--batch-size"),
        ("input_size", -1, "--input-size"),
        ("lr", 0.0, "--lr"),
        ("val_fraction", 1.0, "--val-fraction"),
        ("decoder_channels", 4, "--decoder-channels"),
    ],
)
def test_validation_errors_name_the_flag(field, value, flag):
    with pytest.raises(ValueError, match=flag):
        TrainConfig(**{field: value})
    with pytest.raises(ValueError, match=flag):
        parse([flag, str(value)])


def test_parser_rejects_bad_choices(capsys):
    with pytest.raises(SystemExit):
        parse(["--optimizer", "sgd"])
    assert "--optimizer" in capsys.readouterr().err


def test_every_shipped_config_loads():
    paths = sorted((REPO / "configs").glob("*.yaml")) + sorted((REPO / "configs" / "experiments").glob("*.yaml"))
    assert paths, "no configs/*.yaml found"
    for path in paths:
        cfg = TrainConfig.from_yaml(path)
        assert cfg.data, path


def test_config_yaml_round_trip(tmp_path):
    cfg = TrainConfig(epochs=3, data=["x:0.5"], encoder="efficientnet_lite0", mean=[0.5, 0.5, 0.5])
    cfg.save_yaml(tmp_path / "config.yaml")
    assert TrainConfig.from_yaml(tmp_path / "config.yaml") == cfg
    assert cfg.model_kwargs() == {"encoder": "efficientnet_lite0"}


def test_pattern_background_options_are_checked(tmp_path):
    cfg = TrainConfig(composite_weight=1.0, pattern_backgrounds=0.1, pattern_kinds="flag")
    assert cfg.pattern_kinds == ["flag"]  # a YAML scalar becomes a one-item list
    cfg.save_yaml(tmp_path / "config.yaml")
    assert TrainConfig.from_yaml(tmp_path / "config.yaml") == cfg
    with pytest.raises(ValueError, match="--pattern-kinds must be among .*'zebra'"):
        TrainConfig(composite_weight=1.0, pattern_kinds=["flag", "zebra"])


@pytest.mark.parametrize("name", ["pattern_backgrounds", "rotate_people"])
def test_shares_of_the_composites_are_checked(name):
    flag = "--" + name.replace("_", "-")
    assert getattr(TrainConfig(composite_weight=1.0, **{name: 0.3}), name) == 0.3
    with pytest.raises(ValueError, match=f"{flag} must be in \\[0, 1\\], got 1.5"):
        TrainConfig(composite_weight=1.0, **{name: 1.5})
    with pytest.raises(ValueError, match=f"{flag} must be in"):
        TrainConfig(composite_weight=1.0, **{name: -0.1})
    with pytest.raises(ValueError, match=f"{flag} acts on composited people: it needs --composite-weight > 0"):
        TrainConfig(**{name: 0.2})


def test_things_beside_people_are_a_share_of_every_sample_and_need_no_composites(tmp_path):
    cfg = TrainConfig(beside_objects=0.3)
    cfg.save_yaml(tmp_path / "config.yaml")
    assert TrainConfig.from_yaml(tmp_path / "config.yaml").beside_objects == 0.3
    with pytest.raises(ValueError, match="--beside-objects must be in \\[0, 1\\], got 1.2"):
        TrainConfig(beside_objects=1.2)
    data = make_folder(tmp_path / "data", 2)
    train, _ = builders.build_datasets(tiny_config(data, data, tmp_path / "run", beside_objects=0.5))
    assert train.objects.prob == 0.5 and train.objects.backgrounds == [] and train.objects.large == 0.0
    train, _ = builders.build_datasets(
        tiny_config(data, data, tmp_path / "run", beside_objects=0.5, beside_large=0.3, pattern_kinds=["floral"])
    )
    assert train.objects.large == 0.3 and train.objects.pattern_kinds == ("floral",)
    with pytest.raises(ValueError, match="--beside-large must be in \\[0, 1\\], got 1.5"):
        TrainConfig(beside_large=1.5)
    with pytest.raises(ValueError, match="--beside-large is a share of --beside-objects' shapes"):
        TrainConfig(beside_large=0.4)  # without any shapes to draw around people it would do nothing
    assert builders.build_datasets(tiny_config(data, data, tmp_path / "run"))[0].objects is None


def test_bf16_on_a_cpu_without_native_bf16_warns_and_still_autocasts(tmp_path, monkeypatch, caplog):
    avx2 = tmp_path / "avx2"
    avx2.write_text("processor : 0\nflags : fpu sse2 avx avx2 fma f16c\n")
    native = tmp_path / "native"
    native.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n")
    assert trainer.cpu_has_native_bf16(avx2) is False
    assert trainer.cpu_has_native_bf16(native) is True
    assert trainer.cpu_has_native_bf16(tmp_path / "missing") is None

    cpu = torch.device("cpu")
    real = trainer.cpu_has_native_bf16
    for cpuinfo, warned in ((avx2, True), (native, False)):
        monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda path=cpuinfo: real(path))
        caplog.clear()
        autocast, scaler = trainer.autocast_for(TrainConfig(precision="bf16"), cpu)
        with autocast():
            assert torch.is_autocast_enabled("cpu")
        assert scaler is False
        assert ("several times slower than fp32" in caplog.text) is warned
    caplog.clear()
    trainer.autocast_for(TrainConfig(precision="fp32"), cpu)
    assert caplog.text == ""


# --------------------------------------------------------------------------- a tiny overfit


def test_two_image_overfit(tmp_path):
    data = make_folder(tmp_path / "data", 2)
    cfg = tiny_config(
        data,
        data,
        tmp_path / "run",
        base_channels=8,
        samples_per_epoch=16,
        batch_size=4,
        epochs=15,
        lr=0.02,
        letterbox_prob=1.0,  # always the whole picture, as at evaluation
        aug_strength=0.0,
        vis_every=15,
        vis_images=2,
    )
    result = trainer.main(cfg)
    assert result["best_iou"] > 0.9, read_rows(tmp_path / "run" / "history.csv")
    best = read_checkpoint(tmp_path / "run" / "best.pt")
    assert best["meta"]["val_metrics"]["overall"]["iou"] == pytest.approx(result["best_iou"])
    # an overfit model is confident as well as right: its soft masks are near the truth, not hovering at 0.5
    assert 0 <= best["meta"]["val_metrics"]["overall"]["mae"] < 0.1
    assert "train_state" not in best
    assert len(read_rows(tmp_path / "run" / "history.csv")) == 15
    with Image.open(tmp_path / "run" / "val_predictions.png") as grid:  # image | truth | prediction, 2 rows
        assert grid.size == (3 * 32, 2 * 32)


# --------------------------------------------------------------------------- the seed command, resume


def run_train_py(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_keep_epochs_keeps_each_epochs_weights_only_when_asked(tmp_path):
    data = make_folder(tmp_path / "data", 4)
    val = make_folder(tmp_path / "val", 3, seed=10)
    trainer.main(tiny_config(data, val, tmp_path / "plain"))
    assert not list((tmp_path / "plain").glob("epoch*.pt"))
    out = tmp_path / "kept"
    trainer.main(tiny_config(data, val, out, keep_epochs=True))
    assert sorted(p.name for p in out.glob("epoch*.pt")) == ["epoch001.pt", "epoch002.pt"]
    last = read_checkpoint(out / "last.pt")
    for epoch in (1, 2):
        kept = read_checkpoint(out / f"epoch{epoch:03d}.pt")
        assert "train_state" not in kept and kept["meta"]["epoch"] == epoch
    for key, tensor in read_checkpoint(out / "epoch002.pt")["state_dict"].items():
        torch.testing.assert_close(last["state_dict"][key], tensor, rtol=0, atol=0, msg=key)
    assert "train_state" in last  # last.pt still resumes


@pytest.mark.slow
def test_seed_command_trains_then_resumes_exactly(tmp_path):
    data = make_folder(tmp_path / "data", 4)
    val = make_folder(tmp_path / "val", 3, seed=10)
    cfg = tiny_config(data, val, tmp_path / "run")
    out = Path(cfg.output)

    first = run_train_py(flags(cfg), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "done: epoch 2" in first.stdout
    for name in ("last.pt", "best.pt", "config.yaml", "history.csv", "curves.png"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert [r["epoch"] for r in read_rows(out / "history.csv")] == ["1", "2"]
    assert TrainConfig.from_yaml(out / "config.yaml") == cfg
    assert read_checkpoint(out / "last.pt")["train_state"]["epoch"] == 2
    assert not list(out.glob(".*.tmp"))
    two_epochs = read_rows(out / "history.csv")

    resumed = run_train_py([*flags(cfg), "--epochs", "3", "--resume"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    rows = read_rows(out / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]  # exactly one more epoch
    assert rows[:2] == two_epochs
    last = read_checkpoint(out / "last.pt")
    assert last["train_state"]["epoch"] == 3

    # The same three epochs without an interruption: model, optimizer and RNG state were all restored.
    trainer.main(tiny_config(data, val, tmp_path / "fresh", epochs=3))
    fresh = read_checkpoint(tmp_path / "fresh" / "last.pt")
    for key, tensor in fresh["state_dict"].items():
        torch.testing.assert_close(last["state_dict"][key], tensor, rtol=0, atol=1e-6, msg=key)
    fresh_rows = read_rows(tmp_path / "fresh" / "history.csv")
    for key in ("train_loss", "val_loss", "val_iou"):
        assert float(rows[2][key]) == pytest.approx(float(fresh_rows[2][key]), abs=1e-6), key


@pytest.mark.slow
def test_resume_matches_uninterrupted_run_with_prediction_grids(tmp_path):
    data = make_folder(tmp_path / "data", 4)
    val = make_folder(tmp_path / "val", 3, seed=10)
    trainer.main(tiny_config(data, val, tmp_path / "run", vis_every=1, vis_images=2))
    assert (tmp_path / "run" / "val_predictions.png").is_file()
    trainer.main(tiny_config(data, val, tmp_path / "run", vis_every=1, vis_images=2, epochs=3, resume=True))
    trainer.main(tiny_config(data, val, tmp_path / "fresh", vis_every=1, vis_images=2, epochs=3))
    resumed = read_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]
    fresh = read_checkpoint(tmp_path / "fresh" / "last.pt")["state_dict"]
    for key, tensor in fresh.items():
        torch.testing.assert_close(resumed[key], tensor, rtol=0, atol=1e-6, msg=key)


@pytest.mark.slow
def test_a_carried_checkpoint_is_smaller_and_resumes_where_the_run_stopped(tmp_path, caplog):
    """scripts/carry_checkpoint.py: what a run spanning sessions commits. Adam's moments go, the schedule stays."""
    from test_models import run_script

    data = make_folder(tmp_path / "data", 4)
    trainer.main(tiny_config(data, data, tmp_path / "run", epochs=2, lr=0.01, scheduler="cosine"))
    last = tmp_path / "run" / "last.pt"
    done = run_script("carry_checkpoint.py", str(last), "--output", str(tmp_path / "carried.pt"))
    assert done.returncode == 0, done.stderr
    carried, full = read_checkpoint(tmp_path / "carried.pt"), read_checkpoint(last)
    assert (tmp_path / "carried.pt").stat().st_size < 0.5 * last.stat().st_size
    assert carried["train_state"]["optimizer"]["state"] == {}
    assert carried["train_state"]["optimizer"]["param_groups"] == full["train_state"]["optimizer"]["param_groups"]
    for key, tensor in full["state_dict"].items():
        assert torch.equal(carried["state_dict"][key], tensor), key
    # Two fresh machines go on to epoch 4, one from the full last.pt, one from the carried file: the same schedule.
    for name, source in (("full", last), ("next", tmp_path / "carried.pt")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "last.pt").write_bytes(source.read_bytes())
        caplog.clear()
        with caplog.at_level("INFO", logger="personseg.training.trainer"):
            trainer.main(tiny_config(data, data, tmp_path / name, epochs=4, lr=0.01, scheduler="cosine", resume=True))
        assert ("no optimizer moments" in caplog.text) == (name == "next")
    rows = {name: read_rows(tmp_path / name / "history.csv") for name in ("full", "next")}
    assert [row["epoch"] for row in rows["next"]] == ["3", "4"]
    assert [row["lr"] for row in rows["next"]] == [row["lr"] for row in rows["full"]]
    assert read_checkpoint(tmp_path / "next" / "last.pt")["train_state"]["optimizer"]["state"]  # moments again
    refused = run_script("carry_checkpoint.py", str(tmp_path / "run" / "best.pt"), "--output", str(tmp_path / "x.pt"))
    assert refused.returncode == 2 and "no training state" in refused.stderr and not (tmp_path / "x.pt").exists()


def test_resume_without_last_checkpoint_is_a_clear_error(tmp_path, capsys):
    data = make_folder(tmp_path / "data", 2)
    cfg = tiny_config(data, data, tmp_path / "run")
    code = cli_main(["train", *flags(cfg), "--resume"])
    assert code != 0
    err = capsys.readouterr().err
    assert "--resume" in err and str(tmp_path / "run" / "last.pt") in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_broken_dataset_via_cli_lists_the_problems(tmp_path, capsys):
    data = make_folder(tmp_path / "data", 3)
    (tmp_path / "data" / "masks" / "img1.png").unlink()
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "data" / "masks" / "img2.png")
    cfg = tiny_config(data, data, tmp_path / "run")
    code = cli_main(["train", *flags(cfg)])
    assert code != 0
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "img1.jpg: no mask" in err
    assert "img2.png: mask is 5x5 but the image is 48x36" in err
    assert "--skip-invalid" in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_missing_data_folder_via_cli(tmp_path, capsys):
    code = cli_main(["train", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "run")])
    assert code != 0
    assert "nowhere: no such dataset folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- DDP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def evaluate_checkpoint(path: Path, val: Path, batch_size: int, shards: int = 1) -> dict[str, float]:
    """Single-process evaluation of ``path``; ``shards`` > 1 batches the images as DDP ranks would, so the
    (batch-pooled) loss is comparable too."""
    model, meta = load_checkpoint(path)
    dataset = EvalDataset(PairedFolder(val), eval_transform(meta["input_size"][0], meta["resize"]))
    normalize = trainer.Normalizer(meta["mean"], meta["std"], torch.device("cpu"), channels_last=False)
    loss_fn = get_loss(meta["train_config"]["loss"])
    results = []
    for rank in range(shards):
        loader = DataLoader(Subset(dataset, range(rank, len(dataset), shards)), batch_size=batch_size)
        results.append(trainer.evaluate(model, loader, loss_fn, normalize, nullcontext, DistInfo()))
    metrics = trainer.evaluate(
        model, DataLoader(dataset, batch_size=batch_size), loss_fn, normalize, nullcontext, DistInfo()
    )
    sizes = [len(range(rank, len(dataset), shards)) for rank in range(shards)]
    metrics["sharded_loss"] = sum(r["loss"] * n for r, n in zip(results, sizes, strict=True)) / len(dataset)
    return metrics


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Two CPU processes (gloo) under torchrun, 2 epochs; shared by the DDP tests below."""
    root = tmp_path_factory.mktemp("ddp")
    data = make_folder(root / "data", 4)
    val = make_folder(root / "val", 5, seed=10)  # odd: the ranks get 3 and 2 images
    cfg = tiny_config(data, val, root / "run", epochs=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}"]
    proc = subprocess.run(
        [*command, str(REPO / "train.py"), *flags(cfg)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    return cfg, proc


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_and_write_once(ddp_run):
    cfg, proc = ddp_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = Path(cfg.output)
    assert proc.stdout.count("done: epoch 2") == 2  # both ranks finished
    assert [r["epoch"] for r in read_rows(out / "history.csv")] == ["1", "2"]  # written once, not per rank
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert not list(out.glob(".*.tmp"))
    assert read_checkpoint(out / "last.pt")["train_state"]["epoch"] == 2
    assert (out / "best.pt").is_file() and (out / "curves.png").is_file()


@pytest.mark.slow
def test_ddp_reported_metrics_match_the_saved_checkpoint(ddp_run):
    cfg, proc = ddp_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = Path(cfg.output)
    reported = read_checkpoint(out / "last.pt")["meta"]["val_metrics"]["overall"]
    last_row = read_rows(out / "history.csv")[-1]
    single = evaluate_checkpoint(out / "last.pt", Path(cfg.val_data[0]), cfg.batch_size, shards=2)
    assert reported["mae"] == pytest.approx(single["mae"], abs=1e-6)
    for key in ("dice", "iou", "pixel_accuracy"):
        assert reported[key] == pytest.approx(single[key], abs=1e-6), key
        assert float(last_row[f"val_{key}"]) == pytest.approx(single[key], abs=1e-6), key
    # The loss pools Dice over a batch, so compare it with the same per-rank batching.
    assert reported["loss"] == pytest.approx(single["sharded_loss"], abs=1e-6)


# --------------------------------------------------------------------------- pictures


def test_prediction_grid_layout():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 8, 10, 3), dtype=np.uint8)
    truths = (rng.random((2, 8, 10)) > 0.5).astype(np.float32)
    preds = rng.random((2, 8, 10)).astype(np.float32)
    grid = prediction_grid(images, truths, preds)
    assert grid.shape == (16, 30, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[8:16, :10], images[1])
    np.testing.assert_array_equal(grid[:8, 10:20, 0], (truths[0] * 255).astype(np.uint8))
    np.testing.assert_array_equal(grid[8:16, 20:30, 2], (preds[1] * 255).astype(np.uint8))
    with pytest.raises(ValueError):
        prediction_grid(images, truths[:1], preds)


def test_plot_history_writes_a_png(tmp_path):
    history = tmp_path / "history.csv"
    for epoch in (1, 2, 3):
        row = dict.fromkeys(trainer.HISTORY_FIELDS, 0.5 / epoch)
        trainer._append_history(history, {**row, "epoch": epoch})
    assert len(read_rows(history)) == 3
    plot_history(history, tmp_path / "curves.png")
    with Image.open(tmp_path / "curves.png") as im:
        assert im.format == "PNG"
        assert im.size[0] > im.size[1] > 100


@pytest.mark.parametrize(("field", "value", "named"), [("arch", "resnet9000", "--arch"), ("loss", "l7", "l7")])
def test_unknown_model_or_loss_fails_before_any_data_is_read(tmp_path, field, value, named):
    cfg = tiny_config(tmp_path / "missing", tmp_path / "missing", tmp_path / "run", **{field: value})
    with pytest.raises(KeyError, match=named):  # not the DatasetError the missing folder would give
        trainer.main(cfg)
    assert not (tmp_path / "run").exists()


def test_tensorboard_writer_is_closed_when_an_epoch_fails(tmp_path, monkeypatch):
    data = make_folder(tmp_path / "data", 2)
    closed = []

    class Writer:
        def __init__(self, *a, **k):
            pass

        def close(self):
            closed.append(True)

    monkeypatch.setattr(trainer, "_open_writer", lambda out: Writer())
    monkeypatch.setattr(trainer, "train_one_epoch", lambda ctx, epoch: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        trainer.main(tiny_config(data, data, tmp_path / "run"))
    assert closed == [True]


def test_loader_workers_see_each_new_epoch(tmp_path):
    """With loader worker processes every epoch draws its own samples. A persistent worker kept the mixture of
    epoch 1 and repeated its samples every epoch (sessions 1-6 trained on 2000 samples over and over)."""
    data = make_folder(tmp_path / "data", 4)
    cfg = tiny_config(data, data, tmp_path / "run", workers=1, samples_per_epoch=8, batch_size=4)
    train, vals = builders.build_datasets(cfg)
    train_loader, _ = builders.build_loaders(cfg, train, vals, DistInfo(), pin=False)

    def fingerprint(images: torch.Tensor) -> list[float]:
        return sorted(images.float().sum(dim=(1, 2, 3)).tolist())

    def expected(epoch: int) -> list[float]:
        train.set_epoch(epoch)
        return fingerprint(
            torch.stack([torch.from_numpy(train.sample(i)[0].transpose(2, 0, 1).copy()) for i in range(8)])
        )

    for epoch in (1, 2, 3):
        want = expected(epoch)
        train.set_epoch(epoch)
        got = fingerprint(torch.cat([images for images, _ in train_loader]))  # a whole epoch, as training runs it
        assert got == want, epoch
    assert expected(2) != expected(1)


def test_no_loader_worker_outlives_its_pass(tmp_path):
    """Each worker is a fork that slowly copies the parent's image cache; persistent validation workers (one per
    source) filled the 24 GB machine at 384 px in session 10. After a pass over every loader no worker is alive."""
    import multiprocessing

    data = make_folder(tmp_path / "data", 4)
    cfg = tiny_config(data, data, tmp_path / "run", workers=1, samples_per_epoch=8, batch_size=4)
    train, vals = builders.build_datasets(cfg)
    train_loader, val_loaders = builders.build_loaders(cfg, train, vals, DistInfo(), pin=False)
    before = set(multiprocessing.active_children())
    for loader in (train_loader, *val_loaders.values()):
        assert len(list(loader)) >= 1
    assert set(multiprocessing.active_children()) - before == set()


def test_the_architecture_is_arch_and_the_old_model_key_still_reads(tmp_path, caplog):
    """``--model`` names a shipped model everywhere else; train's architecture is ``--arch``. Configs and
    checkpoints written before the rename (``model: unet``) still load, and ``train --model`` still works, warning."""
    from personseg.cli import build_parser
    from personseg.training.config import config_from_args

    old = tmp_path / "old.yaml"
    old.write_text("model: deeplabv3plus\nencoder: efficientnet_lite0\n")
    assert TrainConfig.from_yaml(old).arch == "deeplabv3plus"
    both = tmp_path / "both.yaml"
    both.write_text("model: unet\narch: deeplabv3plus\n")
    with pytest.raises(ValueError, match="not both arch and model"):
        TrainConfig.from_yaml(both)
    parser = build_parser(["train"])
    assert config_from_args(parser.parse_args(["train", "--arch", "deeplabv3plus"])).arch == "deeplabv3plus"
    with caplog.at_level("WARNING"):
        cfg = config_from_args(parser.parse_args(["train", "--config", str(old), "--model", "unet"]))
    assert cfg.arch == "unet" and "--model is now --arch" in caplog.text
    train_help = next(a for a in parser._actions if a.dest == "command").choices["train"].format_help()
    assert "--arch ARCH" in train_help and "--model MODEL" not in train_help  # one name in the help


def test_training_labels_take_their_outline_from_mattes_and_validation_does_not(tmp_path):
    """``boundary_mattes``: the training copy of a source reads its mattes (also when the same source gives
    cut-outs, ``matte_data``); validation keeps the dataset's own masks."""
    data = make_folder(tmp_path / "data", 4)
    mattes = tmp_path / "mattes"
    mattes.mkdir()
    for i in range(4):
        label = np.asarray(Image.open(data / "masks" / f"img{i}.png"), np.float32) / 255
        soft = label.copy()  # the matte agrees off the outline and is soft on it
        soft[np.roll(label, 1, axis=0) != label] = 0.5
        Image.fromarray(np.round(soft * 255).astype(np.uint8)).save(mattes / f"img{i}.png")
    cfg = tiny_config(
        data,
        data,
        tmp_path / "run",
        val_data=[],
        val_fraction=0.5,
        boundary_mattes=[f"{data}={mattes}"],
        matte_data=[str(data)],
        composite_weight=1.0,
        backgrounds=[str(data / "images")],
    )
    train, vals = builders.build_datasets(cfg)
    folder = next(s for s in train.sources if isinstance(s, PairedFolder))
    assert folder.mattes == mattes and folder.matte_counts["taken"] == len(folder) > 0
    assert any(np.isclose(folder[i][1], 0.5, atol=0.01).any() for i in range(len(folder)))
    val = next(iter(vals.values())).folder
    assert val.mattes is None and all(set(np.unique(val[i][1])) <= {0.0, 1.0} for i in range(len(val)))


def test_shape_crops_cut_images_masks_and_teacher_targets_to_one_window():
    from personseg.training.shapes import shape_crop

    torch.manual_seed(0)
    grid = torch.arange(128 * 128, dtype=torch.float32).view(1, 1, 128, 128)
    image, mask, soft = grid.expand(2, 3, 128, 128), grid.expand(2, 1, 128, 128) + 0.5, grid.expand(2, 1, 128, 128)
    seen = set()
    for _ in range(60):
        x, y, s = shape_crop([image, mask, soft])
        h, w = x.shape[-2:]
        assert (h, w) in {(128, 64), (128, 96), (64, 128), (96, 128)}  # one side kept, the other 1/2 or 3/4
        assert y.shape[-2:] == s.shape[-2:] == (h, w)
        torch.testing.assert_close(y[:, :1], x[:, :1] + 0.5)  # the same window everywhere
        torch.testing.assert_close(s[:, :1], x[:, :1])
        seen.add((h, w, int(x[0, 0, 0, 0])))
    assert {(h, w) for h, w, _ in seen} == {(128, 64), (128, 96), (64, 128), (96, 128)}
    assert len({corner for _, _, corner in seen}) > 10  # the window moves
    x, y, s = shape_crop([image[..., :32, :32], mask[..., :32, :32], None])  # too small to cut: unchanged
    assert x.shape[-2:] == (32, 32) and s is None
    with pytest.raises(ValueError, match="--shape-crops must be in \\[0, 1\\], got 2"):
        TrainConfig(shape_crops=2)


def test_training_with_shape_crops_shows_the_network_non_square_batches(tmp_path, monkeypatch):
    data = make_folder(tmp_path / "data", 4, size=(72, 96))
    val = make_folder(tmp_path / "val", 3, seed=10, size=(72, 96))
    shapes, crop = [], trainer.shape_crop

    def spy(tensors):
        out = crop(tensors)
        shapes.append(tuple(out[0].shape[-2:]))
        return out

    monkeypatch.setattr(trainer, "shape_crop", spy)
    trainer.main(tiny_config(data, val, tmp_path / "run", input_size=64, shape_crops=1.0))
    assert len(shapes) == 8  # every batch: 2 epochs of 8 samples in batches of 2
    assert set(shapes) <= {(64, 32), (32, 64)} and len(set(shapes)) == 2
    assert read_checkpoint(tmp_path / "run" / "last.pt")["meta"]["train_config"]["shape_crops"] == 1.0
