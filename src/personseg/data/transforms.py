"""Albumentations pipelines. Image and mask always go through the same geometric transform.

Hard masks are resampled with NEAREST so labels stay 0/1; the compositor's soft alpha never goes through a
geometric transform here (it is made at the final size), so it stays soft.
"""

from __future__ import annotations

import cv2
import numpy as np

try:
    import albumentations as A
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("training transforms need albumentations: pip install 'personseg[train]'") from exc


def letterbox(size: int) -> list:
    """Keep the aspect ratio, scale the long side to ``size`` and pad (what inference does)."""
    return [
        A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST),
        A.PadIfNeeded(size, size, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
    ]


def whole_image(size: int, resize: str = "letterbox") -> list:
    """The whole image at ``size`` x ``size`` as the model will see it: letterboxed, or stretched to the square."""
    if resize == "letterbox":
        return letterbox(size)
    if resize == "stretch":
        return [A.Resize(size, size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST)]
    raise ValueError(f"resize={resize!r}: use 'letterbox' or 'stretch'")


def photometric(strength: float = 1.0) -> list:
    """Colour, light, blur, noise and compression: cameras, webcams and dark rooms."""
    s = strength
    return [
        A.ColorJitter(brightness=0.3 * s, contrast=0.3 * s, saturation=0.3 * s, hue=0.05 * s, p=0.7),
        A.RandomGamma(gamma_limit=(60, 180), p=0.25 * s),  # includes low-light (gamma > 1 darkens)
        A.ToGray(p=0.05),
        A.OneOf(
            [A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7)), A.Defocus(radius=(1, 3))],
            p=0.2 * s,
        ),
        A.GaussNoise(std_range=(0.01, 0.06), p=0.2 * s),
        A.ImageCompression(quality_range=(35, 95), p=0.3 * s),
    ]


def train_transform(
    size: int, letterbox_prob: float = 0.4, strength: float = 1.0, resize: str = "letterbox"
) -> A.Compose:
    """Random crops and whole images (small people; letterboxed or, for a model that runs ``resize="stretch"``,
    stretched to the square input, as inference will show them), flips, rotation."""
    whole = whole_image(size, resize)
    crop = A.RandomResizedCrop(
        size=(size, size),
        scale=(0.2, 1.0),
        ratio=(0.6, 1.67),
        interpolation=cv2.INTER_LINEAR,
        mask_interpolation=cv2.INTER_NEAREST,
    )
    zoom_out = A.Compose(
        [
            *whole,
            A.Affine(
                scale=(0.45, 1.1),
                translate_percent=(-0.2, 0.2),
                rotate=(-10, 10),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                mask_interpolation=cv2.INTER_NEAREST,
                p=0.8,
            ),
        ]
    )
    return A.Compose(
        [
            A.OneOf([crop, zoom_out], p=1.0) if letterbox_prob < 1 else zoom_out,
            A.HorizontalFlip(p=0.5),
            A.Affine(rotate=(-12, 12), mask_interpolation=cv2.INTER_NEAREST, p=0.25),
            *photometric(strength),
        ]
    )


def composite_transform(strength: float = 1.0) -> A.Compose:
    """For compositor output, already at the final size: flips and photometric only (alpha stays soft)."""
    return A.Compose([A.HorizontalFlip(p=0.5), *photometric(strength)])


def eval_transform(size: int, resize: str = "letterbox") -> A.Compose:
    return A.Compose(whole_image(size, resize))


def apply(transform: A.Compose, image: np.ndarray, mask: np.ndarray, seed: int | None = None):
    """Run ``transform`` on an (image, mask) pair, reseeded for reproducibility when ``seed`` is given."""
    if seed is not None:
        transform.set_random_seed(seed)
    out = transform(image=image, mask=mask)
    return out["image"], out["mask"]
