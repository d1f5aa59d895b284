"""Batch removal on a local Ray instance (2 CPUs): the same outputs as the single-machine path, a bad file
reported while the rest is done, a rerun that skips finished outputs, and an actor killed mid-run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")

from personseg.cli import main  # noqa: E402
from personseg.distributed import CRASH_ONCE_ENV, remove_backgrounds  # noqa: E402
from synthetic import two_people  # noqa: E402

GOOD = 6


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    marker = tmp_path_factory.mktemp("ray") / "crashed-once"
    os.environ[CRASH_ONCE_ENV] = str(marker)  # read by the actors, which inherit the environment
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield marker
    ray.shutdown()
    os.environ.pop(CRASH_ONCE_ENV, None)


def make_folder(folder: Path, extra: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True)
    for i in range(GOOD):
        Image.fromarray(two_people(seed=i)[0]).save(folder / f"photo{i}.png")
    for name in extra:
        Image.fromarray(two_people(seed=99)[0]).save(folder / name)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_cli_on_ray_writes_what_the_plain_path_writes(local_ray, tiny_model, tmp_path, capsys):
    photos = make_folder(tmp_path / "photos")
    common = ["--model", str(tiny_model.onnx), "--outputs", "mask", "cutout", "-q", "--bg-color", "red"]
    assert main(["remove", str(photos), "-o", str(tmp_path / "plain"), *common]) == 1
    plain_err = capsys.readouterr().err
    assert main(["remove", str(photos), "-o", str(tmp_path / "ray"), "--ray", *common]) == 1
    ray_err = capsys.readouterr().err
    assert "done 6, failed 1" in plain_err and "done 6, failed 1" in ray_err
    assert "failed: " in ray_err and "broken.png" in ray_err.split("failed: ")[-1]
    plain, on_ray = files(tmp_path / "plain"), files(tmp_path / "ray")
    assert len(plain) == 2 * GOOD and plain == on_ray  # byte for byte, names included

    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").iterdir()}
    assert main(["remove", str(photos), "-o", str(tmp_path / "ray"), "--ray", *common]) == 1
    assert "done 0, failed 1, skipped 6 (outputs exist)" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").iterdir()} == before  # nothing rewritten


def test_api_reports_each_input_once_and_writes_a_mask_table(local_ray, tiny_model, tmp_path):
    import pyarrow.parquet as pq

    photos = make_folder(tmp_path / "photos")
    report = remove_backgrounds([photos], tmp_path / "out", model=tiny_model.onnx, kinds=["mask"])
    assert (report.done, report.skipped, len(report.failed)) == (GOOD, 0, 1) and "broken.png" in report.failed[0]
    masks = files(tmp_path / "out")
    assert sorted(masks) == [f"photo{i}_mask.png" for i in range(GOOD)]

    table = remove_backgrounds([photos], tmp_path / "table", model=tiny_model.onnx, table=True)
    assert (table.done, len(table.failed)) == (GOOD, 1)
    rows = pq.read_table(tmp_path / "table").to_pylist()
    by_name = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == GOOD + 1 and by_name["broken.png"]["error"] and not by_name["broken.png"]["mask"]
    assert by_name["photo0.png"]["mask"] == masks["photo0_mask.png"]  # the same PNG bytes as the file
    with pytest.raises(ValueError, match="empty"):  # an old table's rows would be counted and mixed in
        remove_backgrounds([photos], tmp_path / "table", model=tiny_model.onnx, table=True)
    with pytest.raises(RuntimeError, match="no GPU"):  # local_ray has CPUs only
        remove_backgrounds([photos], tmp_path / "gpu", model=tiny_model.onnx, gpus_per_actor=1)


def test_an_actor_killed_mid_run_still_yields_every_output_exactly_once(local_ray, tiny_model, tmp_path):
    marker = local_ray
    photos = make_folder(tmp_path / "photos", extra=("crash-once.png",))
    seen = []
    report = remove_backgrounds(
        [photos],
        tmp_path / "out",
        model=tiny_model.onnx,
        kinds=["mask", "cutout"],
        batch_size=2,
        actors=2,
        progress=lambda finished, total: seen.append((finished, total)),
    )
    assert marker.exists()  # an actor did kill itself on crash-once.png, and Ray restarted it
    assert (report.done, len(report.failed)) == (GOOD + 1, 1)
    written = files(tmp_path / "out")
    assert len(written) == 2 * (GOOD + 1) and not any(n.startswith(".") for n in written)  # no temp files left
    assert seen[-1] == (GOOD + 2, GOOD + 2)  # every input reported once, none twice
    mask = np.asarray(Image.open(tmp_path / "out" / "crash-once_mask.png"))
    assert mask.shape == (80, 100) and mask.max() == 255
