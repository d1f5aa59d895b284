"""Torch datasets for training and validation built from folders, weights and the compositor.

Training draws each sample from a source chosen by weight, with a generator seeded by (seed, epoch, index):
the same config gives the same samples on any machine and with any number of loader workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from personseg.data.composite import Compositor
from personseg.data.folder import PairedFolder
from personseg.data.transforms import apply

Sample = tuple[np.ndarray, np.ndarray]


def to_tensors(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 CxHxW image (normalised later, on the batch) and float32 1xHxW mask."""
    return (
        torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None],
    )


class TrainMixture(Dataset):
    """``length`` samples per epoch drawn from weighted sources.

    A source is a ``PairedFolder`` (augmented with ``pair_transform``) or a ``Compositor`` (augmented with
    ``composite_transform``). ``objects`` (``data.beside.BesideObjects``), when given, pastes things beside the
    people of any sample before its augmentation, from a generator of its own: the rest of each sample, label
    included, is the one drawn without it.
    """

    def __init__(
        self,
        sources: Sequence[PairedFolder | Compositor],
        weights: Sequence[float],
        length: int,
        pair_transform: Callable,
        composite_transform: Callable | None = None,
        seed: int = 0,
        objects: Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray] | None = None,
    ) -> None:
        if len(sources) != len(weights) or not sources:
            raise ValueError("give one weight per training source")
        w = np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"source weights must be >= 0 and not all 0, got {list(weights)}")
        self.sources = list(sources)
        self.probs = w / w.sum()
        self.length = int(length)
        self.pair_transform = pair_transform
        self.composite_transform = composite_transform
        self.seed = seed
        self.objects = objects
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        source = self.sources[rng.choice(len(self.sources), p=self.probs)]
        aug_seed = int(rng.integers(2**31))
        composite = isinstance(source, Compositor)
        image, mask = source(rng) if composite else source[int(rng.integers(len(source)))]
        if self.objects is not None:
            image = self.objects(image, mask, np.random.default_rng([self.seed, self.epoch, index, 1]))
        transform = self.composite_transform if composite else self.pair_transform
        return (image, mask) if transform is None else apply(transform, image, mask, seed=aug_seed)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return to_tensors(*self.sample(index))


class EvalDataset(Dataset):
    """Every pair of a folder through a deterministic eval transform (letterbox or stretch)."""

    def __init__(self, folder: PairedFolder, transform: Callable) -> None:
        self.folder = folder
        self.transform = transform

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.folder[index]
        return to_tensors(*apply(self.transform, image, mask))
