"""Checks shared by the model tests: a saved checkpoint rebuilds the same network."""

from __future__ import annotations

from pathlib import Path

import torch

from personseg.models import load_checkpoint, save_checkpoint


def assert_rebuilds(model, path: Path, x: torch.Tensor, out: torch.Tensor, **config) -> None:
    """``model`` saved to ``path`` loads with ``config``'s entries and answers ``x`` with ``out``."""
    save_checkpoint(model, path)
    loaded, _ = load_checkpoint(path)
    for key, value in config.items():
        assert loaded.config[key] == value, key
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(x), out, atol=1e-5)
