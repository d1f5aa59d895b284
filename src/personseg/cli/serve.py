"""``personseg serve``: the HTTP API (and the web UI at /ui) on uvicorn, bound to 127.0.0.1 by default."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys

from personseg.cli import options

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Run the HTTP API: POST /v1/remove and /v1/mask, GET /v1/models and /health, docs at /docs, and the web UI at "
    "/ui. Binds 127.0.0.1 unless --host says otherwise; set an API key (--api-key or $PERSONSEG_API_KEY) before "
    "exposing it. Here --threads defaults to the CPU count divided by --workers. Unlike other commands it logs "
    "at INFO by default: one line per request on stderr (client, method, path, status, ms, bytes; the static "
    "files of /ui and /docs only with -vv), and a last line with the count when it stops; -q keeps only warnings."
)


def add_bind_options(parser: argparse.ArgumentParser, default_port: int) -> None:
    """--host and --port (shared with ``personseg ui``)."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes it to the network (default: 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=default_port, help=f"port (default: {default_port})")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be >= 1")
    return value


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be >= 0 seconds (0: no limit)")
    return value or None


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=DESCRIPTION)
    add_bind_options(parser, default_port=8000)
    parser.add_argument(
        "--api-key",
        default=None,
        help="require this key (X-API-Key or Authorization: Bearer) on every route but /health "
        "(default: $PERSONSEG_API_KEY; none when unset)",
    )
    parser.add_argument("--workers", type=_positive_int, default=2, help="inference threads (default: 2)")
    parser.add_argument(
        "--queue-size",
        type=int,
        default=16,
        help="requests that may wait for a worker; more get 503 at once (default: 16)",
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=25.0, help="largest upload in MiB; larger get 413 (default: 25)"
    )
    parser.add_argument(
        "--body-timeout",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="seconds a client has to send its whole request body; then 408 and the connection is closed, so "
        "stalled uploads cannot pile up (default: 30; 0: none)",
    )
    parser.add_argument(
        "--request-timeout",
        type=_seconds,
        default=120.0,
        metavar="S",
        help="seconds from a request's start to its answer, queue wait included; then 503 (default: 120; 0: none)",
    )
    parser.add_argument("--no-ui", action="store_true", help="do not mount the web UI at /ui")
    parser.add_argument("-q", "--quiet", action="store_true", help="no request lines: log warnings and errors only")
    options.add_model_option(parser)
    options.add_provider_option(parser)
    options.add_device_option(parser)
    options.add_threads_option(parser)
    options.add_max_pixels_option(parser)
    options.add_max_memory_option(parser, default=512 * 2**20)
    parser.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: F401 - a missing extra is named by personseg.cli.main (missing_extra_message)

    from personseg.serve.app import API_KEY_ENV, create_app
    from personseg.serve.server import run as serve

    if args.queue_size < 0 or args.max_upload_mb <= 0:
        print("personseg serve: --queue-size must be >= 0 and --max-upload-mb > 0", file=sys.stderr)
        return 2
    if args.api_key is not None and not args.api_key.strip():
        print(
            "personseg serve: --api-key is empty (an unset variable?); give a key, or leave the option out "
            f"(then ${API_KEY_ENV} is used, or no key)",
            file=sys.stderr,
        )
        return 2
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    with_ui = not args.no_ui
    if with_ui:
        try:
            import gradio  # noqa: F401
        except ImportError:
            log.warning("gradio is not installed, so there is no web UI at /ui: pip install 'personseg[ui]'")
            with_ui = False
    # Each worker runs its own inference: split the cores between them rather than oversubscribe.
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    if not _is_loopback(args.host) and not api_key:
        log.warning("listening on %s without an API key: anyone who can reach it can use it", args.host)
    try:
        app = create_app(
            args.model,
            api_key=api_key,
            max_upload_bytes=int(args.max_upload_mb * 2**20),
            workers=args.workers,
            queue_size=args.queue_size,
            max_pixels=args.max_pixels,
            max_memory=args.max_memory,
            body_timeout=args.body_timeout,
            request_timeout=args.request_timeout,
            providers=args.provider,
            device=args.device,
            threads=threads,
            with_ui=with_ui,
        )
    except (OSError, ValueError, KeyError, ImportError) as exc:  # ImportError: a .pt model without torch
        print(f"personseg serve: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if not args.quiet:
        # A server's requests are its output: shown by default (-v and -vv still add the rest of personseg).
        level = min(logging.getLogger().getEffectiveLevel(), logging.INFO)
        logging.getLogger("personseg.serve").setLevel(level)
    where = f"http://{args.host}:{args.port}"
    print(
        f"personseg serve: API at {where}/v1 (docs {where}/docs)" + (f", UI at {where}/ui" if with_ui else ""),
        file=sys.stderr,
    )
    try:
        requests = serve(app, args.host, args.port)
    except OSError as exc:
        print(f"personseg serve: {exc}", file=sys.stderr)
        return 2
    print(f"personseg serve: stopped after {requests} request{'' if requests == 1 else 's'}", file=sys.stderr)
    return 0
