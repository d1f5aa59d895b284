"""Generated fixtures shared by the inference, export and CLI tests: a tiny trained model and test images.

The model is a 4-channel U-Net trained for a few seconds to find a bright disc on a dark background, so its
predictions are meaningful (tests can check where the "person" is) while staying tiny. It is built once
per session (cached here, since several test modules import these fixtures) and exported to ONNX.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

INPUT_SIZE = [64, 64]
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]


def disc_image(
    height: int, width: int, center: tuple[float, float] | None = None, radius: float | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc on a dark noisy background: (RGB uint8, boolean mask)."""
    rng = np.random.default_rng(seed)
    cy, cx = center if center is not None else (height / 2, width / 2)
    r = radius if radius is not None else 0.3 * min(height, width)
    yy, xx = np.mgrid[:height, :width]
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    bg, fg = rng.integers(0, 60, 3), rng.integers(170, 256, 3)
    img = np.where(mask[..., None], fg, bg).astype(np.float32) + rng.normal(0, 8, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _train_tiny(steps: int = 60):
    import torch

    from personseg.models import create_model

    # One thread: the test machine's cores are shared, and tiny convolutions gain nothing from more.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_steps(torch, create_model, steps)
    finally:
        torch.set_num_threads(threads)


def _train_steps(torch, create_model, steps: int):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = create_model("unet", base_channels=4)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    mean, std = np.float32(MEAN), np.float32(STD)
    for step in range(steps):
        images, masks = [], []
        for i in range(16):
            cy, cx = rng.uniform(16, 48, 2)
            img, mask = disc_image(64, 64, (cy, cx), rng.uniform(8, 20), seed=step * 16 + i)
            images.append(img)
            masks.append(mask)
        x = torch.from_numpy(((np.stack(images) / 255.0 - mean) / std).astype(np.float32).transpose(0, 3, 1, 2))
        y = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@dataclass(frozen=True)
class TinyModel:
    checkpoint: Path
    onnx: Path
    meta: dict


@functools.cache
def build_tiny_model(folder: Path) -> TinyModel:
    from personseg.export import export_onnx
    from personseg.models import save_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "input_size": INPUT_SIZE,
        "mean": MEAN,
        "std": STD,
        "resize": "letterbox",
        "threshold": 0.5,
        "training_data": "generated discs (tests)",
        "licence": "MIT",
    }
    checkpoint = folder / "tiny.pt"
    save_checkpoint(_train_tiny(), checkpoint, meta=meta)
    onnx_path = export_onnx(checkpoint, folder / "tiny.onnx")
    return TinyModel(checkpoint=checkpoint, onnx=onnx_path, meta=meta)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    pytest.importorskip("torch")
    return build_tiny_model(tmp_path_factory.getbasetemp() / "personseg_tiny_model")


@pytest.fixture()
def onnx_model(tiny_model: TinyModel):
    from personseg.inference.api import load_model

    return load_model(tiny_model.onnx, providers="cpu", threads=1)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_tiny_model_finds_the_disc(onnx_model) -> None:
    img, mask = disc_image(64, 64, (30, 34), 14, seed=123)
    alpha = onnx_model.predict(img)
    assert iou(alpha >= 0.5, mask) > 0.9
