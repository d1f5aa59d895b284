"""``personseg ui``: the Gradio web UI alone (``personseg serve`` also mounts it at /ui, next to the API)."""

from __future__ import annotations

import argparse
import sys

from personseg.cli import options
from personseg.cli.serve import add_bind_options

DESCRIPTION = (
    "Run the web UI alone (Gradio): upload or take a photo and see the mask and the cut-out at once; pick a "
    "background or only the main person, run again, download the PNG. Binds 127.0.0.1 by default."
)


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=DESCRIPTION)
    add_bind_options(parser, default_port=7860)
    options.add_model_option(parser)
    options.add_provider_option(parser)
    options.add_threads_option(parser)
    options.add_max_pixels_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personseg.serve.ui import build_ui, page_options  # a missing extra is named by personseg.cli.main

    try:
        blocks = build_ui(args.model, max_pixels=args.max_pixels, providers=args.provider, threads=args.threads)
    except ModuleNotFoundError:
        raise  # gradio, or torch for a .pt model: personseg.cli.main names the extra
    except (OSError, ValueError, KeyError, ImportError) as exc:  # ImportError: a .pt model without torch
        print(f"personseg ui: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    blocks.launch(server_name=args.host, server_port=args.port, share=False, max_file_size=25 * 2**20, **page_options())
    return 0
