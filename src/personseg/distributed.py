"""Batch background removal on a Ray cluster: millions of photos with the outputs ``personseg remove`` writes.

    from personseg.distributed import remove_backgrounds
    report = remove_backgrounds(["photos/"], "cutouts/", recursive=True, address="auto")

Needs ``pip install 'personseg[ray]'`` (Ray Data). The inputs are listed on the driver (the same rules as
``personseg remove``: files, folders, globs); Ray Data streams them through a pool of actors, each of which loads
the model once (ONNX Runtime with as many threads as the actor has CPUs, or the CUDA provider on a GPU actor),
segments an image and writes all of its outputs or none (:class:`~personseg.inference.batch.BatchRemover`,
atomic renames), so the output folder must be one every node can reach (a shared or network filesystem).

- A bad image fails that image (reported at the end with its reason), never the job.
- A rerun skips inputs whose outputs all exist (they are complete: only whole files are ever renamed into place).
- An actor that dies (a killed process, a lost node) is restarted by Ray and its batch retried: writes are
  atomic and idempotent, so every output still exists exactly once.
- ``table=True`` writes a Parquet table of PNG-encoded masks (columns ``path``, ``mask``, ``error``) instead of
  image files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personseg.inference.batch import (
    DEFAULT_OUTPUTS,
    IMAGE_ERRORS,
    BatchRemover,
    Job,
    collect_inputs,
    failure_reason,
)
from personseg.inference.budget import DEFAULT_MAX_MEMORY
from personseg.inference.io import DEFAULT_MAX_PIXELS
from personseg.inference.options import Background, RemoveOptions

log = logging.getLogger(__name__)

#: Environment variable read by the actors: when the file it names does not exist yet, the first actor to reach an
#: input whose name contains ``crash-once`` creates it and kills its own process (the fault-tolerance test).
CRASH_ONCE_ENV = "PERSONSEG_RAY_CRASH_ONCE"


@dataclass
class RayReport:
    """What :func:`remove_backgrounds` did."""

    done: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    """One line per input that failed, naming it and the reason."""
    output: Path | None = None


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError("--ray needs Ray Data: pip install 'personseg[ray]'") from None
    return ray


class _RemoveActor:
    """One Ray actor: loads the model once, then segments and writes each row of the batches it is given."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from personseg.inference.api import load_model

        gpu = settings["gpus_per_actor"] > 0
        threads = max(1, int(settings["cpus_per_actor"]))
        model = load_model(settings["model"], providers="cuda,cpu" if gpu else "cpu", threads=threads)
        self.table = settings["table"]
        self.remover = BatchRemover(
            model,
            Path(settings["folder"]),
            list(settings["kinds"]),
            settings["options"],
            settings["background"],
            settings["max_pixels"],
            settings["max_memory"],
        )

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        errors, masks = [], []
        for source, stem in zip(batch["source"], batch["stem"], strict=True):
            job = Job(Path(source), Path(stem))
            _maybe_crash(job)
            error, mask = "", b""
            try:
                if self.table:
                    mask = self.remover.encode(job, job.source, {"mask": ".png"})["mask"]
                else:
                    self.remover.process(job)
            except IMAGE_ERRORS as exc:
                error = failure_reason(exc, job)
            errors.append(error)
            masks.append(mask)
        out = {"path": [str(s) for s in batch["source"]], "error": errors}
        if self.table:
            out["mask"] = masks
        return out


def _maybe_crash(job: Job) -> None:
    marker = os.environ.get(CRASH_ONCE_ENV)
    if marker and "crash-once" in job.name:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        log.warning("%s: killing this actor on purpose (%s)", job.name, CRASH_ONCE_ENV)
        os._exit(1)


def remove_backgrounds(
    inputs: Sequence[str | os.PathLike] | Any,
    output: str | os.PathLike,
    options: RemoveOptions | None = None,
    background: Background | None = None,
    *,
    model: str | os.PathLike | None = None,
    kinds: Sequence[str] | None = None,
    recursive: bool = False,
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: float = 1,
    gpus_per_actor: float = 0,
    batch_size: int = 8,
    skip_existing: bool = True,
    table: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    progress: Callable[[int, int], None] | None = None,
) -> RayReport:
    """Remove the background of every image in ``inputs`` on Ray and write the outputs under ``output``.

    ``inputs``: files, folders and globs (as ``personseg remove`` takes them), or a ``ray.data.Dataset`` with a
    ``path`` column (e.g. ``ray.data.read_binary_files(..., include_paths=True)``; only the paths are used).
    ``model``: a shipped name or a path every node can read (default: the shipped default). ``kinds``: outputs per
    image as in ``personseg remove --outputs`` (default: original, mask, cutout, comparison, plus replaced with a
    background). ``address``: ``None`` starts (or reuses) a local Ray; ``"auto"`` joins the running cluster;
    ``ray://host:10001`` a remote one. ``actors``: how many model copies (default: as many as the cluster's CPUs
    allow at ``cpus_per_actor`` each). ``progress(done, total)`` is called as results arrive.
    """
    ray = _import_ray()
    options = options or RemoveOptions()
    background = background or Background()
    folder = Path(output)
    if kinds is None:
        kinds = list(DEFAULT_OUTPUTS) + (["replaced"] if background.kind is not None else [])
    kinds = ["mask"] if table else list(kinds)
    jobs, problems = _jobs(inputs, recursive, folder)
    report = RayReport(failed=list(problems), output=folder)
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, include_dashboard=False, logging_level=logging.WARNING)
    # Checked on the driver before anything is scheduled: a bad background or kind fails the whole call here.
    probe = BatchRemover(None, folder, kinds, options, background, max_pixels, max_memory)
    if table and folder.exists() and any(folder.iterdir()):
        # The table is every Parquet file in the folder: an old run's files would be counted and mixed in.
        raise ValueError(f"{folder}: a mask table goes to an empty (or new) folder")
    if skip_existing and not table:
        todo = [job for job in jobs if not probe.done(job)]
        report.skipped = len(jobs) - len(todo)
        jobs = todo
    if not jobs:
        return report
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "model": None if model is None else str(model),
        "folder": str(folder),
        "kinds": kinds,
        "options": options,
        "background": probe.background,  # with its image already read: the actors need no access to it
        "max_pixels": max_pixels,
        "max_memory": max_memory,
        "table": table,
        "cpus_per_actor": cpus_per_actor,
        "gpus_per_actor": gpus_per_actor,
    }
    if actors is None:  # as many as the cluster has room for, by CPUs and (for GPU actors) by GPUs
        resources = ray.cluster_resources()
        actors = int(resources.get("CPU", 1) // max(cpus_per_actor, 1e-9))
        if gpus_per_actor > 0:
            actors = min(actors, int(resources.get("GPU", 0) // gpus_per_actor))
            if actors < 1:
                raise RuntimeError(f"--gpus-per-actor {gpus_per_actor:g}: the Ray cluster has no GPU for one actor")
        actors = max(1, actors)
    rows = [{"source": str(job.source), "stem": str(job.stem)} for job in jobs]
    # Small runs get smaller batches, so that every actor has work; large ones stream in blocks of batches.
    batch_size = max(1, min(batch_size, -(-len(rows) // actors)))
    blocks = max(1, min(-(-len(rows) // batch_size), actors * 16))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    results = dataset.map_batches(
        _RemoveActor,
        fn_constructor_args=(settings,),
        batch_size=batch_size,
        concurrency=actors,
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
        batch_format="numpy",
    )
    try:
        if table:
            results.write_parquet(str(folder))
            rows_out = ray.data.read_parquet(str(folder)).select_columns(["path", "error"]).iter_rows()
        else:
            rows_out = results.iter_rows()
        finished = 0
        for row in rows_out:
            if row["error"]:
                report.failed.append(row["error"])
            else:
                report.done += 1
            finished += 1
            if progress is not None:
                progress(finished, len(jobs))
    except ray.exceptions.RayError as exc:  # a failure no retry fixed: one line, not Ray's traceback
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise RuntimeError(f"Ray failed: {first}") from None
    return report


def _jobs(inputs: Any, recursive: bool, folder: Path) -> tuple[list[Job], list[str]]:
    """The inputs as jobs (and one line per input that cannot be used), from paths or a Ray Dataset."""
    if hasattr(inputs, "iter_rows"):  # a ray.data.Dataset
        specs = [str(row["path"]) for row in inputs.select_columns(["path"]).iter_rows()]
    elif isinstance(inputs, str | os.PathLike):
        specs = [str(inputs)]
    else:
        specs = [str(p) for p in inputs]
    return collect_inputs(specs, recursive, exclude=folder.resolve())
