"""Shared test set-up: one torch thread per test (the machine has 2 cores, often shared), and the session's tiny
trained model.

The model is a 4-channel U-Net trained for a few seconds to find the bright "people" of :mod:`synthetic` on a dark
background, so its predictions are meaningful (tests can check where the "person" is) while staying tiny. It is
built once per session and exported to ONNX.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from synthetic import person

TINY_META = {
    "input_size": [64, 64],
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "resize": "letterbox",
    "threshold": 0.5,
    "training_data": "generated discs (tests)",
    "licence": "MIT",
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Tests of the inference-only install must run without torch: only pin threads when it is there.
    if importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@dataclass(frozen=True)
class TinyModel:
    checkpoint: Path
    onnx: Path
    meta: dict


def _train_tiny(steps: int = 150):
    import torch

    from personseg.models import create_model

    # One thread: the test machine's cores are shared, and tiny convolutions gain nothing from more.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        model = create_model("unet", base_channels=4)
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        mean, std = np.float32(TINY_META["mean"]), np.float32(TINY_META["std"])
        for step in range(steps):
            images, masks = [], []
            for i in range(16):
                center, radius = tuple(rng.uniform(16, 48, 2)), rng.uniform(8, 20)
                img, mask = person(64, 64, seed=step * 16 + i, center=center, radius=radius)
                images.append(img)
                masks.append(mask)
            x = (np.stack(images) / 255.0 - mean) / std
            x = torch.from_numpy(x.astype(np.float32).transpose(0, 3, 1, 2))
            y = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.eval()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    pytest.importorskip("torch")
    from personseg.export import export_onnx
    from personseg.models import save_checkpoint

    folder = tmp_path_factory.mktemp("personseg_tiny_model")
    checkpoint = folder / "tiny.pt"
    save_checkpoint(_train_tiny(), checkpoint, meta=TINY_META)
    return TinyModel(checkpoint=checkpoint, onnx=export_onnx(checkpoint, folder / "tiny.onnx"), meta=TINY_META)


@pytest.fixture()
def onnx_model(tiny_model: TinyModel):
    from personseg.inference.api import load_model

    return load_model(tiny_model.onnx, providers="cpu", threads=1)
