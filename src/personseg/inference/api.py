"""``load_model``: a shipped model name, a ``.onnx`` export or a ``.pt`` checkpoint -> an object that predicts.

Every backend exposes ``predict(rgb) -> alpha`` at the input's size, ``predict_batch`` and ``meta``; the
preprocessing (input size, mean/std, letterbox, stretch or fit) comes only from ``meta``, which travels inside the
model file. ONNX Runtime sessions are created once per (file, providers, threads) and reused.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from personseg.inference import registry
from personseg.inference.refine import guided_upsample
from personseg.inference.zoom import ZoomSettings, merge, zoom_box, zoom_settings

log = logging.getLogger(__name__)

#: ONNX Runtime providers tried in this order when none is requested; CPU is always the fallback.
PREFERRED_PROVIDERS = (
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)
_PROVIDER_ALIASES = {
    "cuda": "CUDAExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "cpu": "CPUExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
_META_KEYS = ("input_size", "mean", "std", "resize", "threshold")
META_KEY = "personseg"  # the ONNX metadata_props key holding the checkpoint's meta as JSON


#: Largest network input side accepted from a model's metadata (a hostile file could ask for any size).
MAX_INPUT_SIDE = 4096
#: resize "fit": the network input's sides are multiples of this (the encoders' output stride).
FIT_STRIDE = 32
RESIZE_MODES = ("letterbox", "stretch", "fit")


@functools.lru_cache(maxsize=4096)
def fit_shape(h: int, w: int, budget: int, stride: int = FIT_STRIDE) -> tuple[int, int, float]:
    """resize "fit": the network input (height, width) for an h x w picture and the scale it is shown at.

    The sides are multiples of ``stride`` and cover at most ``budget`` pixels (the metadata's input_size, e.g.
    320 x 320), shaped to the picture: it reaches the network as large as the budget allows, keeping its aspect,
    and the side it does not fill is trimmed to the next multiple. A 16:9 frame under a 320 x 320 budget goes in
    at 224 x 416 (0.89 of the budget's time), a 2:3 portrait at 384 x 256, a tall crop around a standing person
    at up to 448 x 224: the pixels a square letterbox spends on padding go to the picture instead.
    A picture this has already shrunk (``Segmenter.shrink``) maps to the same input at scale 1.
    """
    best = (0.0, stride, stride)
    for ih in range(stride, min(MAX_INPUT_SIDE, budget // stride) + 1, stride):
        iw = min(MAX_INPUT_SIDE, budget // ih // stride * stride)
        if iw < stride:
            break
        scale = min(ih / h, iw / w)
        if scale > best[0]:
            best = (scale, ih, iw)
    scale = best[0]
    if scale * min(h, w) < min(h, w) + 1:  # less than a pixel larger: it is already as large as it can be
        scale = min(scale, 1.0)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return min(best[1], -(-nh // stride) * stride), min(best[2], -(-nw // stride) * stride), scale


def any_size_reason(meta: dict[str, Any]) -> str | None:
    """Why a model with this metadata needs a network input of any height and width (export makes such a graph,
    loading refuses a fixed one), or None when one fixed input size serves."""
    zoom = meta.get("zoom") or {}
    if meta.get("resize") == "fit":
        return "resize fit"
    if meta.get("orient") and meta["input_size"][0] != meta["input_size"][1]:
        return "orient"
    if meta.get("square"):
        return "square"
    if zoom.get("first_size"):
        return f"zoom first_size {zoom['first_size']}"
    if zoom.get("crop_size"):
        return f"zoom crop_size {zoom['crop_size']}"
    return None


def _numbers(value: Any, count: int) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == count
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )


def validate_meta(meta: Any, source: str) -> dict[str, Any]:
    """Check the preprocessing keys inference needs; the error is one line naming the file and the key."""
    if not isinstance(meta, dict):
        raise ValueError(
            f"{source}: model metadata must be a JSON object, got {type(meta).__name__}; "
            "re-export it with personseg export"
        )
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{source}: model metadata lacks {', '.join(missing)}; re-export it with personseg export")
    size = meta["input_size"]
    if not _numbers(size, 2) or any(s != int(s) for s in size):
        raise ValueError(f"{source}: metadata input_size must be [height, width] in pixels, got {size!r}")
    if not all(1 <= s <= MAX_INPUT_SIDE for s in size):
        raise ValueError(f"{source}: metadata input_size {list(size)} is outside 1..{MAX_INPUT_SIDE} pixels a side")
    for key in ("mean", "std"):
        if not _numbers(meta[key], 3):
            raise ValueError(f"{source}: metadata {key} must be 3 finite numbers (RGB), got {meta[key]!r}")
    if not all(s > 0 for s in meta["std"]):
        raise ValueError(f"{source}: metadata std must be > 0 for every channel, got {meta['std']!r}")
    if meta["resize"] not in RESIZE_MODES:
        raise ValueError(f"{source}: metadata resize must be one of {', '.join(RESIZE_MODES)}, got {meta['resize']!r}")
    threshold = meta["threshold"]
    if not _numbers([threshold], 1) or not 0 < threshold < 1:
        raise ValueError(f"{source}: metadata threshold must be a number in (0, 1), got {threshold!r}")
    orient = meta.get("orient", False)
    if not isinstance(orient, bool) or (orient and meta["resize"] == "fit"):
        raise ValueError(f"{source}: metadata orient must be true or false, and only with resize letterbox or stretch")
    square = meta.get("square")
    if square is not None and not (
        isinstance(square, dict)
        and set(square) == {"side", "below"}
        and isinstance(square["side"], int)
        and not isinstance(square["side"], bool)
        and 32 <= square["side"] <= MAX_INPUT_SIDE
        and square["side"] % FIT_STRIDE == 0
        and _numbers([square["below"]], 1)
        and 1 < square["below"] <= max(size) / min(size)
        and meta["resize"] == "stretch"
    ):
        # below at most the input's own aspect: a photo already stretched to the input size keeps its shape.
        raise ValueError(
            f"{source}: metadata square must be {{side: a multiple of {FIT_STRIDE} pixels, below: an aspect in "
            f"(1, {max(size) / min(size):.3g}], the input size's}} with resize stretch, got {square!r}"
        )
    radius = meta.get("guided_radius")
    if radius is not None and (isinstance(radius, bool) or not isinstance(radius, int) or not 1 <= radius <= 64):
        raise ValueError(f"{source}: metadata guided_radius must be a whole number of pixels in 1..64, got {radius!r}")
    return meta


class Segmenter:
    """What ``load_model`` returns. Subclasses implement ``_forward`` (normalized NCHW -> probabilities) and set
    ``in_channels`` from the network: 3, or 4 for a temporal model (the previous frame's probability as input)."""

    in_channels = 3

    def __init__(self, meta: dict[str, Any], source: str) -> None:
        self.meta = dict(validate_meta(meta, source))
        self.source = source
        self.input_size = (int(meta["input_size"][0]), int(meta["input_size"][1]))
        self._mean = np.asarray(meta["mean"], np.float32) * 255.0
        self._inv_std = 1.0 / (np.asarray(meta["std"], np.float32) * 255.0)
        self.zoom = zoom_settings(self.meta, source)
        """The second look at the people this model asks for in its metadata (``personseg.inference.zoom``), or None."""
        self.guided_radius: int | None = self.meta.get("guided_radius")
        """The guided filter's radius (network-resolution pixels) the metadata sets for bringing this model's
        probability to full size, or None for :func:`~personseg.inference.refine.guided_upsample`'s own rule."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, input_size={list(self.input_size)})"

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    @property
    def temporal(self) -> bool:
        """Whether the network takes the previous frame's probability (``priors`` of :meth:`predict_lowres`)."""
        return self.in_channels == 4

    def _forward(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def network_shape(self, h: int, w: int) -> tuple[int, int]:
        """The network input (height, width) an h x w image goes in at: the input size (turned to the image's
        orientation under metadata ``orient``: a 256x224 input takes a landscape photo at 224x256; a square of
        its own under metadata ``square`` for a picture near square), or under resize "fit" a shape of its own
        within the input size's pixels (:func:`fit_shape`)."""
        if self.meta["resize"] == "fit":
            return fit_shape(h, w, self.input_size[0] * self.input_size[1])[:2]
        return self._oriented(h, w)

    def _oriented(self, h: int, w: int) -> tuple[int, int]:
        """The input size, turned when metadata ``orient`` asks and the h x w image lies the other way; or, under
        metadata ``square`` ({"side": 224, "below": 1.25}), a side x side square for an image whose long side is
        less than ``below`` times its short side (the fast model's 256x192 squeezes a near-square portrait's
        width to 192 pixels, and loses the top of Grace Hopper's cap there)."""
        square = self.meta.get("square")
        if square and max(h, w) < square["below"] * min(h, w):
            return square["side"], square["side"]
        ih, iw = self.input_size
        if self.meta.get("orient") and ih != iw and h != w and (h > w) != (ih > iw):
            return iw, ih
        return ih, iw

    def _box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) of an h x w image inside the network's input (:meth:`network_shape`)."""
        ih, iw = self._oriented(h, w)
        if self.meta["resize"] == "stretch":
            return (0, 0, ih, iw)
        if self.meta["resize"] == "fit":
            ih, iw, scale = fit_shape(h, w, ih * iw)
        else:
            scale = min(ih / h, iw / w)
        nh, nw = min(ih, max(1, round(h * scale))), min(iw, max(1, round(w * scale)))
        return ((ih - nh) // 2, (iw - nw) // 2, nh, nw)

    def shrink(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` resized to the size the network sees it at (area-averaged when smaller), as :meth:`preprocess`
        does. Given this instead of the frame, :meth:`preprocess` has nothing left to resize, and the same
        picture serves as the guided filter's and the stabiliser's guide: one downscale of a video frame instead
        of three (each 1.8 ms on a 720p frame at 1280/192, a ratio OpenCV has no fast path for)."""
        rgb = _check_rgb(rgb)
        h = rgb.shape[0]
        _, _, nh, nw = self._box(*rgb.shape[:2])
        if (nh, nw) == rgb.shape[:2]:
            return rgb
        return cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if nh < h else cv2.INTER_LINEAR)

    def preprocess(self, rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """3 x h x w normalized float32, and the (top, left, height, width) of the image inside it."""
        rgb = _check_rgb(rgb)
        ih, iw = self.network_shape(*rgb.shape[:2])
        box = self._box(*rgb.shape[:2])
        top, left, nh, nw = box
        resized = self.shrink(rgb)
        # Letterbox padding is black pixels, centred, as in training (personseg.data.transforms.letterbox).
        out = np.empty((ih, iw, 3), np.float32)
        out[:] = -self._mean * self._inv_std
        out[top : top + nh, left : left + nw] = (resized.astype(np.float32) - self._mean) * self._inv_std
        return out.transpose(2, 0, 1), box

    def predict_lowres(
        self, images: Sequence[np.ndarray], priors: Sequence[np.ndarray | None] | None = None
    ) -> list[np.ndarray]:
        """The network's probability for each image, cropped to the image's area, at network resolution.

        A temporal model also takes, per image, the previous frame's probability (what this method returned for
        it; ``None`` or no ``priors``: none, as on a first frame or a photo); other models ignore ``priors``.
        """
        items = [self.preprocess(img) for img in images]
        probs: list[np.ndarray] = [np.empty(0)] * len(items)
        shapes: dict[tuple[int, ...], list[int]] = {}  # resize "fit": one network call per input shape
        for i, (x, _) in enumerate(items):
            shapes.setdefault(x.shape, []).append(i)
        for picked in shapes.values():
            batch = np.stack([items[i][0] for i in picked])
            if self.temporal:
                chosen = None if priors is None else [priors[i] for i in picked]
                batch = np.concatenate([batch, self._prior_channel([items[i] for i in picked], chosen)], axis=1)
            for i, p in zip(picked, self._forward(batch), strict=True):
                probs[i] = p
        return [p[0, t : t + h, left : left + w] for p, (_, (t, left, h, w)) in zip(probs, items, strict=True)]

    def _prior_channel(self, items: list, priors: Sequence[np.ndarray | None] | None) -> np.ndarray:
        """N x 1 x H x W: each prior resized into its image's box of the network input, zero elsewhere (the
        items share one input shape)."""
        ih, iw = items[0][0].shape[1:]
        out = np.zeros((len(items), 1, ih, iw), np.float32)
        for i, (_, (top, left, h, w)) in enumerate(items):
            prior = None if priors is None else priors[i]
            if prior is not None:
                resized = cv2.resize(np.asarray(prior, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
                out[i, 0, top : top + h, left : left + w] = np.clip(resized, 0.0, 1.0)
        return out

    def predict(self, rgb: np.ndarray, upsample: str = "guided", zoom: bool | None = None) -> np.ndarray:
        """Person probability (H x W float32 in [0, 1]) at ``rgb``'s size (H x W x 3 uint8 RGB).

        ``upsample="guided"`` follows the photo's edges (see :func:`~personseg.inference.refine.guided_upsample`);
        ``"bilinear"`` is a plain resize. ``zoom``: the second pass on the crop around the people found
        (:mod:`personseg.inference.zoom`); None as the model's metadata says, True with its settings (or the
        defaults), False never.
        """
        return self.predict_batch([rgb], upsample=upsample, zoom=zoom)[0]

    def predict_batch(
        self, images: Sequence[np.ndarray], upsample: str = "guided", batch_size: int = 8, zoom: bool | None = None
    ) -> list[np.ndarray]:
        """:meth:`predict` for several images, run through the network ``batch_size`` at a time."""
        if upsample not in ("guided", "bilinear"):
            raise ValueError(f"upsample={upsample!r}: use 'guided' or 'bilinear'")
        images = [_check_rgb(img) for img in images]
        settings = self.zoom if zoom is None else (self.zoom or ZoomSettings()) if zoom else None
        out = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            if settings is not None and settings.first_size:
                out.extend(self._two_stages(chunk, settings, upsample))
                continue
            seen = [self.shrink(img) for img in chunk]
            lows = self.predict_lowres(seen)
            probs = [
                self._upsample(img, small, low, upsample) for img, small, low in zip(chunk, seen, lows, strict=True)
            ]
            out.extend(probs if settings is None else self._second_look(chunk, lows, probs, settings, upsample))
        return out

    def _upsample(self, img: np.ndarray, small: np.ndarray, low: np.ndarray, upsample: str) -> np.ndarray:
        h, w = img.shape[:2]
        if upsample == "guided":
            return guided_upsample(low, img, radius=self.guided_radius, guide=small if small.shape[0] < h else None)
        interp = cv2.INTER_AREA if h <= low.shape[0] and w <= low.shape[1] else cv2.INTER_LINEAR
        return np.clip(cv2.resize(low, (w, h), interpolation=interp), 0.0, 1.0)

    def at_size(self, side: int) -> Segmenter:
        """This model run at a ``side`` x ``side`` input: the same network and weights (which must accept that size),
        the guided filter's radius scaled with it."""
        view = copy.copy(self)
        view.input_size = (side, side)
        view.meta = {k: v for k, v in self.meta.items() if k != "square"}  # one square, whatever the photo
        if self.guided_radius is not None:
            view.guided_radius = max(1, round(self.guided_radius * side / min(self.input_size)))
        return view

    def crop_view(self, settings: ZoomSettings | None) -> Segmenter:
        """The model that looks at the crops of the second look: itself, or with ``settings.crop_size`` the same
        network fitting each crop within crop_size x crop_size pixels (resize "fit")."""
        if settings is None or not settings.crop_size:
            return self
        view = self.at_size(settings.crop_size)
        view.meta = {**view.meta, "resize": "fit"}
        return view

    def input_scale(self, h: int, w: int) -> tuple[float, float]:
        """How much the network's input shrinks an h x w picture, (vertically, horizontally)."""
        _, _, nh, nw = self._box(h, w)
        return nh / h, nw / w

    def predict_crops(
        self, images: Sequence[np.ndarray], boxes: Sequence[tuple[int, int, int, int] | None]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """For each image its crop ``(top, bottom, left, right)`` through the network, all in one call: (crop, the
        crop as the network saw it, its low-resolution probability), or None where the box is None."""
        picked = [i for i, box in enumerate(boxes) if box is not None]
        crops = [np.ascontiguousarray(images[i][boxes[i][0] : boxes[i][1], boxes[i][2] : boxes[i][3]]) for i in picked]
        seen = [self.shrink(c) for c in crops]
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * len(boxes)
        for i, crop, small, low in zip(picked, crops, seen, self.predict_lowres(seen), strict=True):
            out[i] = (crop, small, low)
        return out

    def _second_look(
        self,
        chunk: list[np.ndarray],
        lows: list[np.ndarray],
        probs: list[np.ndarray],
        settings: ZoomSettings,
        upsample: str,
    ) -> list[np.ndarray]:
        """``probs`` (the first passes of ``chunk`` at full resolution) with the crops around their people run
        through the network (one call) and merged in."""
        look = self.crop_view(settings)
        boxes = [
            zoom_box(low, img.shape[:2], self.input_scale, self.threshold, settings, look.input_scale)
            for img, low in zip(chunk, lows, strict=True)
        ]
        return [
            prob
            if looked is None
            else merge(prob, look._upsample(*looked, upsample), box, settings.margin, settings.weight)
            for prob, box, looked in zip(probs, boxes, look.predict_crops(chunk, boxes), strict=True)
        ]

    def _two_stages(self, chunk: list[np.ndarray], settings: ZoomSettings, upsample: str) -> list[np.ndarray]:
        """The whole photos at ``settings.first_size`` only to find the people, then the crops around them at the
        input size (one call), each mixed into its photo's first pass; where nobody was found or the crop would
        not be larger, the whole photo at the input size."""
        look = self.at_size(settings.first_size)
        seen = [look.shrink(img) for img in chunk]
        lows = look.predict_lowres(seen)
        found = [
            zoom_box(low, img.shape[:2], self.input_scale, self.threshold, settings)
            for img, low in zip(chunk, lows, strict=True)
        ]
        wholes = [(0, img.shape[0], 0, img.shape[1]) for img in chunk]
        boxes = [box or whole for box, whole in zip(found, wholes, strict=True)]
        out = []
        for img, small, low, box, whole, looked in zip(
            chunk, seen, lows, found, wholes, self.predict_crops(chunk, boxes), strict=True
        ):
            second = self._upsample(*looked, upsample)
            if box is None or (box == whole and settings.weight == 1.0):  # nothing of the first pass would stay
                out.append(second)
            else:
                out.append(
                    merge(look._upsample(img, small, low, upsample), second, box, settings.margin, settings.weight)
                )
        return out


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        desc = f"shape {getattr(rgb, 'shape', None)} dtype {getattr(rgb, 'dtype', type(rgb).__name__)}"
        raise ValueError(
            f"predict expects an H x W x 3 uint8 RGB array, got {desc}; "
            "personseg.inference.io.read_image converts any image"
        )
    if min(rgb.shape[:2]) < 1:
        raise ValueError(f"predict got an empty image of shape {rgb.shape}")
    return rgb


class OnnxSegmenter(Segmenter):
    """A ``.onnx`` export (input ``image``, output ``prob``) on ONNX Runtime."""

    def __init__(self, path: Path, providers: list[str], threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # ONNX Runtime's worker threads spin between the steps of a run (fast), and by default for a while after
        # it too, holding a core that the full-size work after the network (guided upsampling, compositing:
        # OpenCV, 2 threads) needs; stop them at the end of each run.
        options.add_session_config_entry("session.force_spinning_stop", "1")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:
            raise ValueError(f"{path}: not a loadable ONNX model ({' '.join(str(exc).split())})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if META_KEY not in props:
            raise ValueError(f"{path}: no personseg metadata in the ONNX file; export it with personseg export")
        try:
            meta = json.loads(props[META_KEY])
        except ValueError as exc:
            raise ValueError(f"{path}: the personseg metadata in the ONNX file is not valid JSON ({exc})") from None
        super().__init__(meta, str(path))
        self.input_name = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape
        self.in_channels = shape[1] if isinstance(shape[1], int) else 3
        why = any_size_reason(self.meta)
        if why and any(isinstance(side, int) for side in shape[2:]):
            raise ValueError(
                f"{path}: metadata {why} needs a network input of any height and width, but this one is fixed at "
                f"{shape[2]}x{shape[3]}; re-export it with personseg export"
            )
        self.providers = self.session.get_providers()
        log.info("loaded %s on ONNX Runtime with %s", path, self.providers[0])

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(None, {self.input_name: batch.astype(np.float32, copy=False)})[0]
        except Exception as exc:  # onnxruntime's Fail, RuntimeException ...: a broken or hostile graph
            text = " ".join(str(exc).split())
            raise RuntimeError(
                f"{self.source}: ONNX Runtime failed running the model ({text[:300]}); is it a personseg export?"
            ) from None


class TorchSegmenter(Segmenter):
    """A ``.pt`` training checkpoint on PyTorch (imported only here: the default install has no torch)."""

    def __init__(self, path: Path, device: str | None, threads: int | None) -> None:
        try:
            import torch

            from personseg.models import load_checkpoint
        except ImportError:
            raise ImportError(
                f"{path}: a .pt checkpoint needs torch (pip install 'personseg[train]'); "
                "or export it once with 'personseg export' and load the .onnx"
            ) from None
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            model, meta = load_checkpoint(path)
        except (TypeError, KeyError, AttributeError) as exc:  # a dict of the wrong shape
            raise ValueError(f"{path}: malformed personseg checkpoint ({type(exc).__name__}: {exc})") from None
        self.model = model.to(self.device)
        self.in_channels = int(getattr(model, "config", {}).get("in_channels", 3))
        super().__init__(meta, str(path))
        log.info("loaded %s on PyTorch (%s)", path, self.device)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return torch.sigmoid(self.model(x)).float().cpu().numpy()


def resolve_providers(providers: str | Sequence[str] | None) -> list[str]:
    """ONNX Runtime providers to use: the requested ones (aliases like ``cuda`` allowed) or the best available."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if providers is None:
        chosen = [p for p in PREFERRED_PROVIDERS if p in available]
    else:
        if isinstance(providers, str):
            providers = [p for p in providers.split(",") if p]
        chosen = [_PROVIDER_ALIASES.get(p.lower(), p) for p in providers]
        missing = [p for p in chosen if p not in available]
        if missing:
            raise ValueError(
                f"ONNX Runtime provider {', '.join(missing)} is not available here; available: {', '.join(available)}"
            )
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


_cache: dict[tuple, Segmenter] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every loaded model (their sessions are freed when no longer referenced)."""
    with _cache_lock:
        _cache.clear()


def load_model(
    name_or_path: str | os.PathLike | None = None,
    providers: str | Sequence[str] | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> Segmenter:
    """Load a shipped model by name (``None``: the default), or a ``.onnx`` / ``.pt`` file by path.

    ``providers``: ONNX Runtime execution providers (``"cuda"``, ``["CoreMLExecutionProvider"]`` ...) of a shipped
    model or ``.onnx`` file; by default the best available.
    ``device``: the torch device of a ``.pt`` checkpoint (``"cpu"``, ``"cuda:1"``; default: CUDA if present).
    ``threads``: CPU threads for inference (default: ONNX Runtime's choice, all cores).
    The same file with the same settings returns the same cached object.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if name_or_path is None:
        name_or_path = registry.DEFAULT_MODEL
    text = os.fspath(name_or_path)
    if text in registry.SHIPPED_MODELS:
        path = registry.shipped_model_path(text)
    else:
        path = Path(text).expanduser()
        if path.suffix.lower() not in (".onnx", ".pt", ".pth"):
            raise ValueError(
                f"unknown model {text!r}: not a shipped model ({', '.join(registry.SHIPPED_MODELS)}) "
                "nor a path to a .onnx or .pt file"
            )
        if not path.is_file():
            raise FileNotFoundError(f"{text}: model file not found")
    path = path.resolve()
    stat = path.stat()
    is_torch = path.suffix.lower() != ".onnx"
    if is_torch:
        device = _torch_device(device, providers)
        key: tuple = ("torch", str(path), stat.st_size, stat.st_mtime_ns, device, threads)
    else:
        resolved = resolve_providers(providers)
        key = ("onnx", str(path), stat.st_size, stat.st_mtime_ns, tuple(resolved), threads)
    with _cache_lock:
        model = _cache.get(key)
        if model is None:
            model = TorchSegmenter(path, device, threads) if is_torch else OnnxSegmenter(path, resolved, threads)
            _cache[key] = model
    return model


def _torch_device(device: str | None, providers: str | Sequence[str] | None) -> str | None:
    if device is not None or providers is None:
        return device
    # Before ``device`` existed ``providers`` chose the torch device too: still honoured, with a warning.
    warnings.warn(
        "load_model: providers= is for ONNX Runtime; pass device= (e.g. 'cpu', 'cuda') for a .pt checkpoint",
        DeprecationWarning,
        stacklevel=3,
    )
    names = [providers] if isinstance(providers, str) else list(providers)
    first = names[0].lower() if names else "cpu"
    if first.startswith("cuda") or first in ("gpu", "cudaexecutionprovider"):
        return "cuda" if first in ("gpu", "cudaexecutionprovider") else first
    return "cpu"
