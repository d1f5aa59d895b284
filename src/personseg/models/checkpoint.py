"""Checkpoints that rebuild their model with no other information.

A checkpoint is a dict of plain types and tensors (loadable with ``weights_only=True``)::

    {"format": "personseg-checkpoint", "version": 1,
     "model": {"name": "deeplabv3plus", "config": {...constructor kwargs...}},
     "state_dict": {...}, "meta": {...preprocessing + provenance...},
     "train_state": {...}  # optional: optimizer, scheduler, scaler, epoch, RNG, for --resume}

``meta`` carries what inference needs (see :data:`DEFAULT_META`) plus provenance (training data, metrics, licence).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from personseg.models._base import SegmentationModel
from personseg.models.registry import create_model, model_name

FORMAT = "personseg-checkpoint"
VERSION = 1

#: Preprocessing every model needs at inference; training fills these from its config.
DEFAULT_META: dict[str, Any] = {
    "input_size": [256, 256],  # [height, width] the network sees
    "mean": [0.485, 0.456, 0.406],  # on RGB scaled to [0, 1]
    "std": [0.229, 0.224, 0.225],
    "resize": "letterbox",  # "letterbox" keeps aspect ratio and pads; "stretch" squashes
    "threshold": 0.5,
}


def build_meta(**overrides: Any) -> dict[str, Any]:
    """DEFAULT_META with ``overrides`` applied (unknown keys are kept as provenance)."""
    meta = copy.deepcopy(DEFAULT_META)
    meta.update(overrides)
    return meta


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temp file beside ``path`` then rename, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_checkpoint(
    model: SegmentationModel, meta: dict[str, Any] | None = None, train_state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The checkpoint dict for ``model`` (unwrapping DDP / torch.compile wrappers)."""
    model = unwrap(model)
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": {"name": model_name(model), "config": dict(model.config)},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": build_meta(**(meta or {})),
    }
    if train_state is not None:
        ckpt["train_state"] = train_state
    return ckpt


def save_checkpoint(
    model: SegmentationModel,
    path: str | os.PathLike,
    meta: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (+ optional training state) to ``path`` atomically."""
    atomic_save(make_checkpoint(model, meta, train_state), path)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate the checkpoint dict (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        damage = _zip_damage(path)
        if damage is not None:
            raise ValueError(
                f"{path}: the checkpoint file is truncated or corrupt ({damage}; {path.stat().st_size:,} bytes): "
                "an interrupted save or copy, or a full disk? Use another copy (best.pt) or start afresh"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"{path}: not a readable personseg checkpoint ({type(exc).__name__}: {first[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a personseg checkpoint (missing format={FORMAT!r})")
    if ckpt.get("version", 0) > VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt['version']} is newer than this personseg reads")
    return ckpt


def _zip_damage(path: Path) -> str | None:
    """How a file in torch.save's zip format is damaged, or None if it is not a zip or is intact (read only
    after torch.load failed, whose own message for a cut file is e.g. "OSError: [Errno 22] Invalid argument")."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                return None
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, OSError, EOFError):
        return "its zip directory is missing or damaged"
    return f"{bad} fails its CRC check" if bad else None


def model_from_checkpoint(ckpt: dict[str, Any]) -> SegmentationModel:
    """Rebuild the model in ``ckpt`` and load its weights. The encoder is not re-initialised from ImageNet."""
    config = dict(ckpt["model"]["config"])
    if "encoder_weights" in config:
        config["encoder_weights"] = None  # the state dict below replaces them anyway
    model = create_model(ckpt["model"]["name"], **config)
    model.config = dict(ckpt["model"]["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model


def load_checkpoint(path: str | os.PathLike) -> tuple[SegmentationModel, dict[str, Any]]:
    """Rebuild the model saved at ``path``; returns ``(model in eval mode, meta)``."""
    ckpt = read_checkpoint(path)
    model = model_from_checkpoint(ckpt)
    model.eval()
    return model, build_meta(**ckpt["meta"])


def unwrap(model: torch.nn.Module) -> SegmentationModel:
    """The SegmentationModel inside DDP and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model  # type: ignore[return-value]


def average_checkpoints(paths: list[str | os.PathLike], note: str = "") -> dict[str, Any]:
    """A checkpoint whose weights are the uniform mean of ``paths``' (a "model soup" of fine-tunes of one model).

    The models must be the same architecture with the same configuration. Integer buffers (BatchNorm's batch
    counter) come from the first; its preprocessing metadata is kept, its per-run provenance (epoch, validation
    figures, training state) is dropped, and ``meta["averaged_from"]`` names each input with its sha256.
    """
    from personseg.data.download import file_digest

    if len(paths) < 2:
        raise ValueError("average_checkpoints needs at least two checkpoints")
    ckpts = [read_checkpoint(p) for p in paths]
    first = ckpts[0]
    for path, ckpt in zip(paths[1:], ckpts[1:], strict=True):
        if ckpt["model"] != first["model"] or ckpt["state_dict"].keys() != first["state_dict"].keys():
            raise ValueError(f"{path}: a different model from {paths[0]} ({ckpt['model']['name']}); cannot average")
        for key in ("input_size", "mean", "std", "resize"):
            if ckpt["meta"].get(key) != first["meta"].get(key):
                raise ValueError(f"{path}: {key} differs from {paths[0]}'s; cannot average")
    state = {}
    for key, value in first["state_dict"].items():
        if value.is_floating_point():
            state[key] = sum(c["state_dict"][key].double() for c in ckpts).div(len(ckpts)).to(value.dtype)
        else:
            state[key] = value.clone()
    meta = {k: v for k, v in first["meta"].items() if k not in ("epoch", "val_metrics")}
    meta["averaged_from"] = [
        {"path": str(p), "sha256": file_digest(Path(p)), "epoch": c["meta"].get("epoch")}
        for p, c in zip(paths, ckpts, strict=True)
    ]
    if note:
        meta["note"] = note
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": copy.deepcopy(first["model"]),
        "state_dict": state,
        "meta": meta,
    }


def with_inference(
    path: str | os.PathLike,
    size: tuple[int, int] | None = None,
    zoom: dict[str, float] | bool | None = None,
    note: str = "",
    resize: str | None = None,
    guided_radius: int | None = None,
    orient: bool | None = None,
    square: tuple[int, float] | bool | None = None,
) -> dict[str, Any]:
    """The checkpoint at ``path`` set to run differently at inference, weights unchanged.

    ``size`` ([height, width]): the network's input size. A network trained at one input size can score better at
    another (the v3 default, trained at 320, is shipped at 384). Inference and export read ``meta["input_size"]``;
    the size it was trained at stays in ``meta["trained_input_size"]`` (and in ``train_config``), so the checkpoint
    still says how it was made.
    ``zoom``: the second look at the people (``personseg.inference.zoom``): its settings (``{"min_gain": 1.15,
    "margin": 0.1}``, or the fast tier's two stages with ``first_size`` and the rest), True for the defaults, False to
    remove it, None to leave it as it is.
    ``resize``: how a photo becomes the network's input, ``"letterbox"`` (aspect kept, padded) or ``"stretch"``
    (every input pixel used, the photo distorted to the input's shape; the fast model runs so since session 11).
    ``guided_radius``: the guided filter's radius in network-resolution pixels when the probability is brought to
    full size (``refine.guided_upsample``; without it, 1/64 of the network's shorter side), 0 to remove the setting.
    ``orient``: a non-square input turned to each photo's orientation (a 256x224 input takes a landscape photo at
    224x256; letterbox and stretch), False to remove it, None to leave it as it is.
    ``square``: (side, below): a photo whose long side is less than ``below`` times its short side goes in at a
    side x side square instead (the fast model: (224, 1.25), so a near-square portrait is not squeezed into
    256x192); False to remove it, None to leave it as it is.
    The optimizer's state is dropped: the copy is for inference, export and ``--init-from``, not for ``--resume``.
    """
    from personseg.inference.api import validate_meta
    from personseg.inference.zoom import ZoomSettings, zoom_settings

    ckpt = read_checkpoint(path)
    meta = dict(ckpt["meta"])
    if size is not None:
        height, width = (int(v) for v in size)
        if height < 32 or width < 32:
            raise ValueError(f"{path}: input size must be at least 32x32, got {height}x{width}")
        meta.setdefault("trained_input_size", list(meta["input_size"]))
        meta["input_size"] = [height, width]
    if resize is not None:
        meta["resize"] = resize
    if zoom is False:
        meta.pop("zoom", None)
    elif zoom is not None:
        settings = ZoomSettings() if zoom is True else zoom_settings({"zoom": dict(zoom)}, str(path))
        defaults = dataclasses.asdict(ZoomSettings())
        meta["zoom"] = {  # min_gain and margin always; the two stages' settings when they differ from the defaults
            k: v for k, v in dataclasses.asdict(settings).items() if k in ("min_gain", "margin") or v != defaults[k]
        }
    if orient is False:
        meta.pop("orient", None)
    elif orient:
        meta["orient"] = True
    if square is False:
        meta.pop("square", None)
    elif square:
        meta["square"] = {"side": int(square[0]), "below": float(square[1])}
    if guided_radius == 0:
        meta.pop("guided_radius", None)
    elif guided_radius is not None:
        meta["guided_radius"] = guided_radius
    if note:
        meta["note"] = note
    validate_meta(meta, str(path))  # what inference will check when it loads the copy (resize among it)
    return {**{k: v for k, v in ckpt.items() if k != "train_state"}, "meta": meta}
