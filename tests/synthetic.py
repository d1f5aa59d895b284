"""Generated fixtures shared by the tests (never ../shared data)."""

import numpy as np


def person(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8, bool mask): a bright ellipse on a dark noisy background."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    ry, rx = rng.uniform(0.25, 0.4) * h, rng.uniform(0.15, 0.3) * w
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    img = rng.normal(40, 15, (h, w, 3))
    img[mask] = rng.normal(210, 15, (int(mask.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8), mask
