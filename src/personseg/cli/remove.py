"""``personseg remove``: remove or replace the background of photos, one file or thousands.

Inputs are files, folders (``--recursive``), globs or ``-`` (stdin); outputs go to a folder (one file per
requested kind, subfolders mirrored) or ``-`` (stdout, one PNG). A bad input is reported and skipped, the
batch goes on; the exit code is 0 only if every input succeeded.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from personseg.cli import options
from personseg.cli.folders import folders_to_create, remove_if_empty
from personseg.inference.batch import (
    DEFAULT_OUTPUTS,
    IMAGE_ERRORS,
    OUTPUT_KINDS,
    STDIN,
    BatchRemover,
    Job,
    collect_inputs,
    failure_reason,
)

log = logging.getLogger(__name__)

LOCAL_RAY = "local"
DESCRIPTION = (
    "Remove or replace the background of photos. Inputs: files, folders (-r for subfolders), globs, or - "
    "for stdin. Outputs: one file per kind in the output folder (subfolders mirrored), or one PNG on stdout "
    "with -o -. Bad inputs are reported and skipped; the exit code is 0 only if every input succeeded."
)


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=DESCRIPTION)
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders, globs, or - for stdin")
    parser.add_argument("--image", action="append", default=[], metavar="PATH", help="an input (same as INPUT)")
    parser.add_argument("-o", "--output", default="results", help="output folder, or - for stdout (default: results/)")
    parser.add_argument("-r", "--recursive", action="store_true", help="include images in subfolders of folders")
    parser.add_argument(
        "--outputs",
        nargs="+",
        default=None,
        metavar="KIND",
        help=f"what to write per image, from {', '.join(OUTPUT_KINDS)} (default: {' '.join(DEFAULT_OUTPUTS)}, "
        "plus replaced with a --bg-* option; with -o - one kind, default cutout)",
    )
    parser.add_argument("--skip-existing", action="store_true", help="skip images whose outputs all exist")
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="images processed at once, each on its own thread; --threads then defaults to CPUs / N, and the "
        "--max-memory budget holds per image in flight (default: 0, automatic: min(CPUs, 4))",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no INFO messages")
    options.add_model_option(parser)
    options.add_provider_option(parser)
    options.add_device_option(parser)
    options.add_threads_option(parser)
    options.add_max_pixels_option(parser)
    options.add_max_memory_option(parser)
    options.add_photo_options(parser)
    ray = parser.add_argument_group("Ray cluster (pip install 'personseg[ray]')")
    ray.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL_RAY,
        default=None,
        metavar="ADDRESS",
        help="process the inputs on Ray: alone, a local Ray on this machine; 'auto' joins the cluster started with "
        "'ray start'; or ray://HOST:10001. Outputs go to -o, which every node must reach; inputs whose outputs "
        "all exist are skipped, so a rerun resumes",
    )
    ray.add_argument(
        "--actors", type=int, default=None, metavar="N", help="model copies (default: CPUs / --cpus-per-actor)"
    )
    ray.add_argument(
        "--cpus-per-actor", type=float, default=1, metavar="N", help="CPUs (inference threads) per actor (default: 1)"
    )
    ray.add_argument(
        "--gpus-per-actor",
        type=float,
        default=0,
        metavar="N",
        help="GPUs per actor, e.g. 0.25 to share one (default: 0)",
    )
    parser.set_defaults(func=run)


def _say(message: object) -> None:
    print(f"personseg remove: {' '.join(str(message).split())}", file=sys.stderr)


def _fail(message: object) -> int:
    """A usage or setup error, found before any image was processed."""
    _say(message)
    return 2


def _requested_kinds(args: argparse.Namespace, to_stdout: bool, replacing: bool) -> list[str]:
    if args.outputs is None:
        if to_stdout:
            return ["replaced" if replacing else "cutout"]
        return list(DEFAULT_OUTPUTS) + (["replaced"] if replacing else [])
    kinds = list(dict.fromkeys(k for item in args.outputs for k in item.split(",") if k))
    bad = [k for k in kinds if k not in OUTPUT_KINDS]
    if bad:
        raise ValueError(f"--outputs: unknown kind {', '.join(bad)}; choose from {', '.join(OUTPUT_KINDS)}")
    if "replaced" in kinds and not replacing:
        raise ValueError("--outputs replaced needs --bg-color, --bg-image or --bg-blur")
    if to_stdout and len(kinds) != 1:
        raise ValueError("-o - writes one image to stdout: pick one kind with --outputs")
    return kinds


def _check_output_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".personseg-write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(f"cannot write to the output folder {folder}: {reason}") from None


def run(args: argparse.Namespace) -> int:
    specs = list(args.image) + list(args.inputs)
    if not specs:
        return _fail("no input: give image files, folders, globs or - for stdin")
    to_stdout = args.output == STDIN
    try:
        remove_options = options.remove_options_from_args(args)
        background = options.background_from_args(args)
        kinds = _requested_kinds(args, to_stdout, background.kind is not None)
    except ValueError as exc:
        return _fail(exc)
    if specs.count(STDIN) > 1:
        return _fail("- (stdin) can be given only once")
    folder = None if to_stdout else Path(args.output)
    jobs, problems = collect_inputs(specs, args.recursive, exclude=folder.resolve() if folder else None)
    if STDIN in specs and sys.stdin.isatty():
        return _fail("- reads an image from stdin, but stdin is a terminal: pipe an image in")
    if to_stdout and sys.stdout.isatty():
        return _fail("-o - writes a binary PNG to stdout, but stdout is a terminal: redirect it (> out.png) or pipe it")
    if args.ray is not None and (to_stdout or STDIN in specs):
        return _fail("--ray reads and writes files on the cluster: give input files or folders and an output folder")
    if args.jobs < 0:
        return _fail(f"--jobs must be >= 0 (0: automatic), got {args.jobs}")
    if to_stdout and len(jobs) + len(problems) != 1:
        return _fail(f"-o - writes one image to stdout, but {len(jobs) + len(problems)} inputs were given")
    # Everything that can fail for the whole batch is checked before the first image is touched.
    created = folders_to_create(folder) if folder is not None else []
    try:
        if folder is not None:
            _check_output_folder(folder)
        background = background.loaded(args.max_pixels, args.max_memory)  # read once for the whole batch
        if args.ray is not None:  # the actors load the model; nothing more to prepare here
            return _run_on_ray(args, specs, remove_options, background, kinds, created)
        parallel = _parallel_images(args, len(jobs))
        model = options.load_model_from_args(args)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        return _fail(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
    remover = BatchRemover(
        model, folder or Path("."), kinds, remove_options, background, args.max_pixels, args.max_memory
    )
    if to_stdout:
        if problems:
            _say(problems[0])
            return 1
        try:
            data = remover.encode(jobs[0], _source(jobs[0]), {kinds[0]: ".png"})[kinds[0]]
        except IMAGE_ERRORS as exc:
            _say(failure_reason(exc, jobs[0]))
            return 1
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0

    todo = [job for job in jobs if not (args.skip_existing and remover.done(job))]
    skipped = len(jobs) - len(todo)
    done = 0
    failures = list(problems)
    results = _in_parallel(lambda job: remover.process(job, _source(job)), todo, parallel)
    for job, exc in _progress(results, len(todo), args.quiet):
        if exc is None:
            done += 1  # all of an image's outputs were written, or none
        else:
            failures.append(failure_reason(exc, job))
            log.debug("failure on %s", job.name, exc_info=(type(exc), exc, exc.__traceback__))
    return _summary(done, skipped, failures, folder, created)


def _in_parallel(work, jobs: list[Job], parallel: int):
    """(job, None or the error it raised) for each job, in order, ``parallel`` of them running at once on threads
    (decoding, ONNX Runtime, OpenCV and PNG encoding release the GIL); at most 2 x ``parallel`` in flight."""

    def attempt(job: Job):
        try:
            work(job)
        except IMAGE_ERRORS as exc:
            return job, exc
        return job, None

    if parallel <= 1:
        yield from map(attempt, jobs)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(parallel, thread_name_prefix="personseg-remove") as pool:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.submit(attempt, job))
            if len(pending) >= 2 * parallel:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _run_on_ray(args, specs, remove_options, background, kinds, created) -> int:
    """``--ray``: the same jobs on a Ray cluster (:mod:`personseg.distributed`), with the same summary."""
    from personseg.distributed import remove_backgrounds

    ignored = [
        f
        for f, given in (
            ("--jobs", args.jobs),
            ("--threads", args.threads),
            ("--provider", args.provider),
            ("--device", args.device),
        )
        if given
    ]
    if ignored:  # each actor has --cpus-per-actor threads, and the CUDA provider with --gpus-per-actor
        log.warning("--ray: %s not used on the cluster (see --cpus-per-actor, --gpus-per-actor)", ", ".join(ignored))

    bar = None
    if not args.quiet:
        try:
            from tqdm import tqdm

            bar = tqdm(desc="personseg remove (ray)", unit="image", file=sys.stderr, disable=None)
        except ImportError:
            pass

    def progress(finished: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(finished - bar.n)

    try:
        report = remove_backgrounds(
            specs,
            args.output,
            remove_options,
            background,
            model=args.model,
            kinds=kinds,
            recursive=args.recursive,
            address=None if args.ray == LOCAL_RAY else args.ray,
            actors=args.actors,
            cpus_per_actor=args.cpus_per_actor,
            gpus_per_actor=args.gpus_per_actor,
            skip_existing=True,
            max_pixels=args.max_pixels,
            max_memory=args.max_memory,
            progress=progress,
        )
    except (ImportError, ConnectionError, RuntimeError, ValueError) as exc:
        remove_if_empty(created)  # nothing was written: no empty output folder left behind
        return _fail(exc)
    finally:
        if bar is not None:
            bar.close()
    return _summary(report.done, report.skipped, report.failed, Path(args.output), created)


def _parallel_images(args: argparse.Namespace, count: int) -> int:
    """How many images run at once (--jobs; 0: min(CPUs, 4)). With several, --threads defaults to the CPUs
    shared between them, so the network's threads and the images' do not oversubscribe the cores."""
    cpus = os.cpu_count() or 1
    parallel = max(1, min(args.jobs or min(cpus, 4), count))
    if parallel > 1 and args.threads is None:
        args.threads = max(1, cpus // parallel)
    return parallel


def _source(job: Job):
    return sys.stdin.buffer.read() if job.source == STDIN else job.source


def _summary(done: int, skipped: int, failures: list[str], folder: Path, created: list[Path]) -> int:
    """The end of a batch: one line of counts, then one line per failed input; exit code 0 only if none failed."""
    summary = f"personseg remove: done {done}, failed {len(failures)}"
    if skipped:
        summary += f", skipped {skipped} (outputs exist)"
    if remove_if_empty(created):  # a run that wrote nothing leaves no empty folders behind
        print(f"{summary}; nothing written", file=sys.stderr)
    else:
        print(f"{summary}; outputs in {folder}/", file=sys.stderr)
    for line in failures:
        print(f"  failed: {line}", file=sys.stderr)
    return 0 if not failures else 1


def _progress(results, total: int, quiet: bool):
    if quiet or total < 2:
        return results
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with personseg[train]; without it there is just no bar
        return results
    # disable=None: no bar when stderr is not a terminal (logs, CI), so it never pollutes them.
    return tqdm(results, total=total, desc="personseg remove", unit="image", file=sys.stderr, disable=None)
