"""``remove_background``: one call from any image to a cut-out, keeping the input's kind (like rembg).

The work is split so the CLI can make several outputs from one prediction: :func:`segment` reads the image,
predicts and post-processes the alpha (:class:`RemoveOptions`), and returns a :class:`Segmentation` whose
methods render the mask, the cut-out, a replaced background and the comparison strip.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

from personseg.inference import compose, refine
from personseg.inference.api import Segmenter, load_model
from personseg.inference.budget import DEFAULT_MAX_MEMORY
from personseg.inference.io import DEFAULT_MAX_PIXELS, ImageSource, LoadedImage, encode_image, read_image
from personseg.inference.subject import SubjectTracker, check_subject, main_subject

log = logging.getLogger(__name__)

FOREGROUND_METHODS = ("blur", "ml", "none")


@dataclass
class RemoveOptions:
    """How the network's probability becomes the final alpha. Field names match ``remove_background``'s kwargs."""

    soft: bool = True
    """Soft alpha (anti-aliased edges, hair); ``False`` gives a hard 0/1 mask at ``threshold``."""
    edge_cutoff: float = 0.1
    """Soft alpha below this becomes 0 and above ``1 - edge_cutoff`` becomes 1 (see ``refine.tighten``)."""
    threshold: float | None = None
    """Person / background cut for hard masks, components, holes and crop (default: the model's own)."""
    keep_largest: int = 0
    """Keep only the k largest people (connected regions); 0 keeps all."""
    fill_holes: float = 0.0
    """Fill holes smaller than this fraction of the image area (0: off; 0.01 = 1%)."""
    feather: float = 0.0
    """Blur the edge with a Gaussian of this many pixels (0: off)."""
    matting: bool = False
    """Closed-form alpha matting around the boundary for hair (needs ``personseg[matting]``)."""
    foreground: str = "blur"
    """Foreground colour estimation for cut-outs: ``blur`` (fast), ``ml`` (pymatting) or ``none``."""
    crop: bool = False
    """Crop every output to the people's bounding box."""
    crop_margin: float = 0.05
    """Margin around the crop, as a fraction of the box's height / width."""
    subject: str = "all"
    """``all`` the people, or only the ``main`` one and whoever touches them, dropping bystanders and audiences
    (the rule: :mod:`personseg.inference.subject`)."""

    def __post_init__(self) -> None:
        for field in ("edge_cutoff", "threshold", "fill_holes", "feather", "crop_margin"):
            value = getattr(self, field)
            if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
                raise ValueError(f"{field} must be a finite number, got {value!r}")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if not 0.0 <= self.edge_cutoff < 0.5:
            raise ValueError(f"edge_cutoff must be in [0, 0.5), got {self.edge_cutoff}")
        if self.keep_largest < 0:
            raise ValueError(f"keep_largest must be >= 0 (0 keeps all), got {self.keep_largest}")
        if not 0.0 <= self.fill_holes <= 1.0:
            raise ValueError(f"fill_holes is a fraction of the image area in [0, 1], got {self.fill_holes}")
        if self.feather < 0:
            raise ValueError(f"feather must be >= 0 pixels, got {self.feather}")
        if self.crop_margin < 0:
            raise ValueError(f"crop_margin must be >= 0, got {self.crop_margin}")
        if self.foreground not in FOREGROUND_METHODS:
            raise ValueError(f"foreground={self.foreground!r}: use one of {', '.join(FOREGROUND_METHODS)}")
        check_subject(self.subject, "subject")
        if self.matting and not self.soft:
            raise ValueError("matting produces a soft alpha: it cannot be combined with a hard mask (soft=False)")

    def threshold_for(self, model: Segmenter) -> float:
        """The person / background cut: this option's, else the one in ``model``'s metadata."""
        return self.threshold if self.threshold is not None else float(model.threshold)


def postprocess(
    image: np.ndarray,
    alpha: np.ndarray,
    options: RemoveOptions,
    threshold: float,
    subject: SubjectTracker | None = None,
) -> np.ndarray:
    """Apply ``options`` to the full-resolution ``alpha`` of ``image``, in a fixed order.

    The main subject is chosen first, on the model's own probability: every later step (edge cutoff,
    components, holes, matting, threshold, feather) then works on the kept person only. A video passes its
    ``subject`` tracker so the choice stays on the same person from frame to frame.
    """
    if options.subject == "main":
        alpha = subject(alpha, image) if subject is not None else main_subject(alpha, image, threshold)
    if options.soft:
        alpha = refine.tighten(alpha, options.edge_cutoff)
    if options.keep_largest:
        alpha = refine.keep_largest(alpha, options.keep_largest, threshold)
    if options.fill_holes:
        alpha = refine.fill_holes(alpha, options.fill_holes, threshold)
    if options.matting:
        alpha = refine.matte(image, alpha, threshold)
    if not options.soft:
        alpha = refine.binarize(alpha, threshold)
    if options.feather:
        alpha = refine.feather(alpha, options.feather)
    return alpha


@dataclass
class Segmentation:
    """An image, its final alpha, and the renderings of both. Arrays are RGB uint8 / float32 alpha."""

    image: np.ndarray
    alpha: np.ndarray
    options: RemoveOptions
    source: LoadedImage
    max_memory: int | None = DEFAULT_MAX_MEMORY
    """The budget the image was read with; a background image is read within it too."""

    @cached_property
    def foreground(self) -> np.ndarray:
        """The person's colours with the old background removed from semi-transparent pixels."""
        return refine.estimate_foreground(self.image, self.alpha, self.options.foreground)

    def mask(self) -> np.ndarray:
        """H x W uint8 alpha."""
        return compose.alpha_to_uint8(self.alpha)

    @cached_property
    def _cutout(self) -> np.ndarray:
        return compose.cutout(self.foreground, self.alpha)

    def cutout(self) -> np.ndarray:
        """H x W x 4 RGBA: the person on transparency (computed once; the comparison reuses it)."""
        return self._cutout

    def replaced(
        self,
        bgcolor: str | Sequence[int] | None = None,
        bg_image: ImageSource | None = None,
        bg_blur: float | None = None,
    ) -> np.ndarray:
        """The person over a colour, an image (scaled to cover) or their own blurred background (one of them).

        ``bgcolor``: ``(R, G, B[, A])`` or text such as ``"red"``, ``"#ff000080"``, ``"0,128,255"``.
        """
        h, w = self.alpha.shape
        if sum(x is not None for x in (bgcolor, bg_image, bg_blur)) != 1:
            raise ValueError("give exactly one of bgcolor, bg_image, bg_blur")
        if bgcolor is not None:
            background = compose.color_background(h, w, bgcolor)
        elif bg_image is not None:
            bg = read_image(bg_image, name="background", max_memory=self.max_memory).rgb
            background = compose.cover(bg, h, w)
        else:
            background = compose.blurred_background(self.image, self.alpha, float(bg_blur))
        return compose.over(self.foreground, self.alpha, background)

    def comparison(self, result: np.ndarray | None = None) -> np.ndarray:
        """Original | mask | result (see :func:`compose.comparison`).

        The result is the cut-out on a checkerboard, or ``result`` when given: a :meth:`replaced` image, so the
        strip shows the new background (a see-through colour over the checkerboard).
        """
        if result is None:
            return compose.comparison(self.image, self.alpha, self.cutout())
        if result.shape[2] == 3:
            result = np.dstack([result, np.full(result.shape[:2], 255, np.uint8)])
        return compose.comparison(self.image, self.alpha, result)


def segment(
    image: ImageSource,
    model: Segmenter | str | os.PathLike | None = None,
    options: RemoveOptions | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    name: str | None = None,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
) -> Segmentation:
    """Read ``image``, predict its alpha at full resolution and post-process it.

    ``max_pixels`` refuses larger images from the header; ``max_memory`` is the working-memory budget of the
    image in bytes: a larger one is processed (and rendered) at the largest size that fits, with a warning
    (see :mod:`personseg.inference.budget`; ``None``: full size whatever it costs).
    """
    options = options or RemoveOptions()
    model = model if isinstance(model, Segmenter) else load_model(model)
    loaded = read_image(image, max_pixels=max_pixels, name=name, max_memory=max_memory)
    rgb = loaded.rgb
    threshold = options.threshold_for(model)
    alpha = postprocess(rgb, model.predict(rgb), options, threshold)
    if options.crop:
        box = compose.person_box(alpha, threshold, options.crop_margin)
        if box is None:
            log.warning("%s: no person found, not cropping", loaded.name)
        else:
            top, bottom, left, right = box
            rgb, alpha = rgb[top:bottom, left:right], alpha[top:bottom, left:right]
    return Segmentation(image=rgb, alpha=alpha, options=options, source=loaded, max_memory=max_memory)


def remove_background(
    image: ImageSource,
    model: Segmenter | str | os.PathLike | None = None,
    *,
    only_mask: bool = False,
    bgcolor: str | Sequence[int] | None = None,
    bg_image: ImageSource | None = None,
    bg_blur: float | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    **options: Any,
) -> Any:
    """Remove (or replace) the background of ``image``, returning the same kind of object.

    ``image``: a path or bytes (-> PNG bytes), a PIL image (-> PIL RGBA), or an RGB ndarray (-> H x W x 4
    uint8). With ``only_mask`` the result is the mask instead (PNG bytes / PIL "L" / H x W uint8).
    ``bgcolor`` ((R, G, B[, A]), ``"red"``, ``"#00ff0080"``), ``bg_image`` (any image, scaled to cover) or
    ``bg_blur`` (sigma in pixels) put a new background behind the person. ``max_pixels`` refuses larger images;
    ``max_memory`` (bytes) is the working-memory budget: a larger image is processed, and returned, reduced to
    fit (a warning is logged); ``None`` lifts it. ``model``: a loaded model, a shipped name or a path
    (default: the shipped default). Other keyword arguments are :class:`RemoveOptions` fields
    (``soft``, ``edge_cutoff``, ``threshold``, ``keep_largest``, ``fill_holes``, ``feather``, ``matting``,
    ``foreground``, ``crop``, ``crop_margin``, ``subject``).
    """
    unknown = set(options) - set(RemoveOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(
            f"remove_background got unknown option(s) {', '.join(sorted(unknown))}; "
            f"valid: {', '.join(RemoveOptions.__dataclass_fields__)}"
        )
    if bgcolor is not None:
        bgcolor = compose.parse_color(bgcolor)  # a bad colour fails before any work
    seg = segment(image, model, RemoveOptions(**options), max_pixels=max_pixels, max_memory=max_memory)
    if only_mask:
        result = seg.mask()
    elif bgcolor is not None or bg_image is not None or bg_blur is not None:
        result = seg.replaced(bgcolor=bgcolor, bg_image=bg_image, bg_blur=bg_blur)
        if result.shape[2] == 3:  # rembg's convention: the result is always RGBA
            result = np.dstack([result, np.full(result.shape[:2], 255, np.uint8)])
    else:
        result = seg.cutout()
    if isinstance(image, Image.Image):
        return Image.fromarray(result)  # "L" for a mask, "RGBA" otherwise
    if isinstance(image, np.ndarray):
        return result
    return encode_image(result, ".png")
