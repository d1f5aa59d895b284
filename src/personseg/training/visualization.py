"""Pictures of training: loss/metric curves from the history CSV and image | truth | prediction grids."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def prediction_grid(images: np.ndarray, truths: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Rows of image | truth | prediction as one HxWx3 uint8 array.

    ``images`` N x H x W x 3 uint8; ``truths`` and ``preds`` N x H x W in [0, 1].
    """
    rows = []
    for image, truth, pred in zip(images, truths, preds, strict=True):
        as_rgb = [np.repeat((m[..., None] * 255).clip(0, 255).astype(np.uint8), 3, axis=2) for m in (truth, pred)]
        rows.append(np.concatenate([image, *as_rgb], axis=1))
    return np.concatenate(rows, axis=0)


def save_grid(grid: np.ndarray, path: str | Path) -> None:
    from PIL import Image

    Image.fromarray(grid).save(path)


def read_history(path: str | Path) -> list[dict[str, float]]:
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]


def plot_history(history_csv: str | Path, output: str | Path) -> None:
    """Loss (train/val) and val Dice/IoU/pixel accuracy per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_history(history_csv)
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("train_loss", "val_loss"):
        ax_loss.plot(epochs, [r[key] for r in rows], marker="o", label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("loss")
    ax_loss.legend()
    for key in ("val_dice", "val_iou", "val_pixel_accuracy"):
        ax_metric.plot(epochs, [r[key] for r in rows], marker="o", label=key)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_title("validation")
    ax_metric.legend()
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
