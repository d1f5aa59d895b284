"""``remove_background``: one call from any image to a cut-out, keeping the input's kind (like rembg).

The work is split so the CLI can make several outputs from one prediction: :func:`segment` reads the image,
predicts and post-processes the alpha (:class:`RemoveOptions`), and returns a :class:`Segmentation` whose
methods render the mask, the cut-out, a replaced background and the comparison strip.
"""

from __future__ import annotations

import logging
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
from personseg.inference.options import Background, OptionError, RemoveOptions
from personseg.inference.subject import SubjectTracker, main_subject

__all__ = ["Background", "RemoveOptions", "Segmentation", "postprocess", "remove_background", "segment"]

log = logging.getLogger(__name__)


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

    def replaced(self, background: Background) -> np.ndarray:
        """The person over ``background``'s colour, image (scaled to cover) or their own blurred background."""
        return compose.over(self.foreground, self.alpha, background.canvas(self.image, self.alpha, self.max_memory))

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
    alpha = postprocess(rgb, model.predict(rgb, zoom=None if options.zoom else False), options, threshold)
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
    # Both are checked (a bad colour, two backgrounds) before any work, named as this function's arguments.
    try:
        background = Background(color=bgcolor, image=bg_image, blur=bg_blur)
    except OptionError as exc:
        raise ValueError(exc.named({"color": "bgcolor", "image": "bg_image", "blur": "bg_blur"})) from None
    seg = segment(image, model, RemoveOptions(**options), max_pixels=max_pixels, max_memory=max_memory)
    if only_mask:
        result = seg.mask()
    elif background.kind is not None:
        result = seg.replaced(background)
        if result.shape[2] == 3:  # rembg's convention: the result is always RGBA
            result = np.dstack([result, np.full(result.shape[:2], 255, np.uint8)])
    else:
        result = seg.cutout()
    if isinstance(image, Image.Image):
        return Image.fromarray(result)  # "L" for a mask, "RGBA" otherwise
    if isinstance(image, np.ndarray):
        return result
    return encode_image(result, ".png")
