"""Crops around the labelled people of street scenes, so small pedestrians are trained on at useful sizes.

In CamVid-like frames most people are under 40 px tall; whole frames shrunk to the network's input make them a
few pixels, where nothing can be learned. :class:`PersonCrops` turns a folder into a fixed list of square crops,
each centred on one labelled person and about ``context`` times that person's height wide, plus every whole
frame (so frames without people and the wide view stay in the mix).
"""

from __future__ import annotations

import cv2
import numpy as np

from personseg.data.folder import PairedFolder

Box = tuple[int, int, int, int]  # x0, y0, x1, y1


def person_boxes(mask: np.ndarray, min_pixels: int = 12) -> list[Box]:
    """Bounding boxes of the connected labelled regions (``mask >= 0.5``), largest first."""
    labels = (mask >= 0.5).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(labels, connectivity=8)
    boxes = [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h, area in stats[1:n] if area >= min_pixels]
    return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)


def crop_around(box: Box, height: int, width: int, context: float, min_side: int) -> Box:
    """A square crop ``context`` x the person's height (at least ``min_side``), centred on them, inside the frame."""
    x0, y0, x1, y1 = box
    side = int(round(max((y1 - y0) * context, (x1 - x0) * 1.5, min_side)))
    side = min(side, height, width)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    left = int(np.clip(cx - side // 2, 0, width - side))
    top = int(np.clip(cy - side // 2, 0, height - side))
    return left, top, left + side, top + side


class PersonCrops:
    """``crops[i]`` is ``(rgb, mask)``: a whole frame of ``folder`` or a crop around one of its people.

    Up to ``per_image`` people per frame (the largest) get a crop; the list is fixed at construction, so the
    sampling stays reproducible like a plain folder's.
    """

    def __init__(self, folder: PairedFolder, context: float = 4.0, min_side: int = 96, per_image: int = 3) -> None:
        if context <= 1:
            raise ValueError(f"context must be > 1 (crop side / person height), got {context}")
        self.folder = folder
        self.items: list[tuple[int, Box | None]] = []
        for index in range(len(folder)):
            _, mask = folder[index]
            h, w = mask.shape
            self.items.append((index, None))
            for box in person_boxes(mask)[:per_image]:
                self.items.append((index, crop_around(box, h, w, context, min_side)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        source, box = self.items[index]
        rgb, mask = self.folder[source]
        if box is None:
            return rgb, mask
        x0, y0, x1, y1 = box
        return np.ascontiguousarray(rgb[y0:y1, x0:x1]), np.ascontiguousarray(mask[y0:y1, x0:x1])
