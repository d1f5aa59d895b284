"""Export a training checkpoint to the ONNX file inference loads (needs torch and onnx: ``personseg[train]``).

The exported graph takes ``image`` (N x 3 x H x W float32, already normalized; N is dynamic) and returns
``prob`` = sigmoid(logits) (N x 1 x H x W). The checkpoint's ``meta`` (input size, mean/std, resize, threshold,
provenance) is stored as JSON in the ONNX ``metadata_props`` under ``personseg``, and the architecture under
``personseg_model``, so the file alone says how to use it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from personseg.inference.api import FIT_STRIDE, META_KEY, any_size_reason
from personseg.models.checkpoint import build_meta, model_from_checkpoint, read_checkpoint

log = logging.getLogger(__name__)

#: The ONNX ``metadata_props`` key holding the architecture (name + config) as JSON; ``META_KEY`` holds the meta.
MODEL_KEY = "personseg_model"


class _Probabilities(torch.nn.Module):
    """The model with its logits turned into probabilities, so every runtime gets the same output."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(image))


def export_onnx(
    checkpoint_path: str | os.PathLike,
    output_path: str | os.PathLike,
    input_size: tuple[int, int] | list[int] | None = None,
    opset: int = 17,
    dynamo: bool = False,
    verify: bool = True,
) -> Path:
    """Write ``checkpoint_path`` as an ONNX model at ``output_path`` (atomically) and return the path.

    ``input_size`` ([height, width]) overrides the checkpoint's; it is recorded in the metadata.
    ``dynamo=False`` uses the TorchScript exporter, which is fast and reliable for these convolutional
    models; if it fails the dynamo exporter is tried. ``verify`` runs the file on ONNX Runtime against
    PyTorch and raises if they differ by more than 1e-3.
    """
    import onnx

    checkpoint_path, output_path = Path(checkpoint_path), Path(output_path)
    ckpt = read_checkpoint(checkpoint_path)
    model = model_from_checkpoint(ckpt)
    meta: dict[str, Any] = build_meta(**ckpt["meta"])
    if input_size is not None:
        if len(input_size) != 2 or min(input_size) < 1:
            raise ValueError(f"input_size must be (height, width) > 0, got {input_size!r}")
        meta["input_size"] = [int(input_size[0]), int(input_size[1])]
    h, w = meta["input_size"]
    # A model that runs at other sizes than its input size (resize "fit", the fast tier's two stages, a second
    # look's crops at their own shapes, a non-square input turned to the photo: any_size_reason) needs a graph
    # that takes any height and width; every other export keeps them fixed (ONNX Runtime plans for them).
    first = (meta.get("zoom") or {}).get("first_size")
    fit = meta.get("resize") == "fit" or bool((meta.get("zoom") or {}).get("crop_size"))  # inputs from fit_shape
    stride = int(getattr(model, "stride", 1))
    if first and (first % stride or h % stride or w % stride):
        raise ValueError(f"zoom first_size {first} and input size {h}x{w} must be multiples of the network's {stride}")
    if fit and FIT_STRIDE % stride:
        raise ValueError(f"resize fit makes inputs in multiples of {FIT_STRIDE}, not of the network's stride {stride}")
    wrapped = _Probabilities(model).eval()  # eval on the wrapper: export restores the wrapper's mode
    dummy = torch.randn(2, int(getattr(model, "config", {}).get("in_channels", 3)), h, w)  # 4: a temporal model

    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output_path.parent, prefix=f".{output_path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        _torch_export(wrapped, dummy, tmp, opset, dynamo, any_size=any_size_reason(meta) is not None)
        proto = onnx.load(tmp)
        props = {
            META_KEY: json.dumps(meta, sort_keys=True, default=_jsonable),
            MODEL_KEY: json.dumps(ckpt["model"], sort_keys=True, default=_jsonable),
        }
        for entry in list(proto.metadata_props):
            if entry.key in props:
                proto.metadata_props.remove(entry)
        for key, value in props.items():
            proto.metadata_props.add(key=key, value=value)
        proto.producer_name = "personseg"
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        if verify:
            _verify(tmp, wrapped, dummy)
            if first:
                _verify(tmp, wrapped, torch.randn(1, dummy.shape[1], first, first))
            if fit:  # a landscape photo's shape
                _verify(tmp, wrapped, torch.randn(1, dummy.shape[1], 7 * FIT_STRIDE, 13 * FIT_STRIDE))
            if meta.get("orient") and h != w:  # the input turned, as a photo lying the other way gets it
                _verify(tmp, wrapped, torch.randn(1, dummy.shape[1], w, h))
            if meta.get("square"):  # a near-square photo's own square
                side = meta["square"]["side"]
                _verify(tmp, wrapped, torch.randn(1, dummy.shape[1], side, side))
        os.chmod(tmp, 0o644)
        os.replace(tmp, output_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("exported %s (%s, input %dx%d) to %s", checkpoint_path, ckpt["model"]["name"], h, w, output_path)
    return output_path


def _jsonable(value: Any) -> Any:
    # Provenance may hold tensors or numpy scalars (metrics); everything else becomes its string.
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _torch_export(
    model: torch.nn.Module, dummy: torch.Tensor, path: str, opset: int, dynamo: bool, any_size: bool = False
) -> None:
    common = dict(input_names=["image"], output_names=["prob"], opset_version=opset)
    axes = {0: "batch", 2: "height", 3: "width"} if any_size else {0: "batch"}
    if not dynamo:
        try:
            with warnings.catch_warnings():
                # The deprecation notice and the tracer's note that padding is fixed for this input size.
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (dummy,),
                    path,
                    dynamic_axes={"image": axes, "prob": axes},
                    dynamo=False,
                    **common,
                )
            return
        except Exception as exc:
            log.warning("TorchScript ONNX export failed (%s); trying the dynamo exporter", exc)
    torch.onnx.export(
        model,
        (dummy,),
        path,
        dynamic_shapes={
            "image": {k: torch.export.Dim(name, min=1, max=1024 if k == 0 else 4096) for k, name in axes.items()}
        },
        dynamo=True,
        external_data=False,
        **common,
    )


def _verify(path: str, model: torch.nn.Module, dummy: torch.Tensor) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": dummy.numpy()})[0]
    with torch.inference_mode():
        want = model(dummy).numpy()
    diff = float(np.abs(got - want).max())
    log.info("ONNX Runtime vs PyTorch on a random batch: max abs diff %.2e", diff)
    if got.shape != want.shape or diff > 1e-3:
        raise RuntimeError(f"exported model disagrees with PyTorch: shape {got.shape} vs {want.shape}, diff {diff:.3g}")
