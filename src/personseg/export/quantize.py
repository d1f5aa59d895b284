"""Int8 quantization of an exported ONNX model (ONNX Runtime static quantization, QDQ format).

Weights become int8 per output channel and activations uint8, with ranges calibrated on real photos run
through the model's own preprocessing (from its metadata). On a 2-core AVX512-VNNI CPU this makes the shipped
DeepLabV3+/EfficientNet-Lite0 2.4x faster (17.6 -> 7.2 ms at 256x256) for -0.0003 validation IoU. The
personseg metadata is kept, with ``"quantized": "int8"`` added, so the file loads like any other export.

Weights use 7 of their 8 bits (``reduce_range``). ONNX Runtime multiplies uint8 activations by int8 weights;
without VNNI (AVX2-only CPUs, common on laptops and cloud machines) it sums pairs of products in 16 bits, which
saturate when both are near full range, so the same file gave different masks on different CPUs: on an AVX2-only
EPYC the v3 default (shipped until session 16) kept a fifth of the flag behind Grace Hopper (box mean 0.19;
0.07 on an AVX512-VNNI CPU), and the v8 weights' 8-bit file scored 0.565 IoU on coco_train where their float
export scores 0.605. With 7-bit weights no pair can saturate, every CPU computes the same integers, and the file
follows its float export (the v3 file's mean difference on the bundled photos 0.018 / 0.005 instead of 0.025 /
0.008; the v8 file 0.605 on coco_train) at the same speed; uint8 weights would also avoid saturation but ran 6x
slower.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def calibration_images(
    roots: Sequence[str | os.PathLike],
    limit: int = 100,
    val_fraction: float | None = None,
    val_patterns: Sequence[str] = (),
) -> list[Path]:
    """Up to ``limit`` images spread evenly over ``roots`` (folders of images, or with an ``images/`` folder).

    ``val_fraction`` leaves out each root's fixed validation split (as training does: whole sequences where
    ``val_patterns`` name the root, else the hash split), so calibration never sees the images the model is
    scored on.
    """
    from personseg.data.folder import IMAGE_EXTENSIONS
    from personseg.data.split import split_source

    per_root: list[list[Path]] = []
    for root in map(Path, roots):
        folder = root / "images" if (root / "images").is_dir() else root
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if val_fraction:
            train, _ = split_source(root.name, [p.stem for p in files], val_fraction, val_patterns)
            keep = set(train)
            files = [p for p in files if p.stem in keep]
        if not files:
            raise ValueError(f"{root}: no images for calibration")
        per_root.append(files)
    share = max(1, limit // len(per_root))
    chosen = []
    for files in per_root:
        picks = np.linspace(0, len(files) - 1, min(share, len(files))).astype(int)
        chosen += [files[i] for i in picks]
    return chosen[:limit]


class _Reader:
    """ONNX Runtime's calibration data reader: one preprocessed photo per call."""

    def __init__(self, model, files: Sequence[Path], input_name: str) -> None:
        self.model, self.input_name = model, input_name
        self._files: Iterator[Path] = iter(files)

    def get_next(self) -> dict[str, np.ndarray] | None:
        from personseg.inference.io import read_image

        path = next(self._files, None)
        if path is None:
            return None
        batch, _ = self.model.preprocess(read_image(path).rgb)
        return {self.input_name: batch[None].astype(np.float32)}


class _NotFromOnnxRuntime(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname


@contextlib.contextmanager
def _onnxruntime_quiet():
    """ONNX Runtime's quantizer logs dozens of 'Increased scale[...]' lines on the root logger: drop them."""
    quiet = _NotFromOnnxRuntime()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def quantize_int8(
    onnx_path: str | os.PathLike, output_path: str | os.PathLike, images: Sequence[str | os.PathLike]
) -> Path:
    """Write an int8 copy of the personseg ONNX model ``onnx_path`` to ``output_path`` (atomically)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from personseg.inference.api import META_KEY, load_model

    if not images:
        raise ValueError("int8 quantization needs calibration images")
    onnx_path, output_path = Path(onnx_path), Path(output_path)
    model = load_model(onnx_path, providers="cpu")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".quantize.") as work:
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        reader = _Reader(model, [Path(p) for p in images], model.session.get_inputs()[0].name)
        with _onnxruntime_quiet():
            quantize_static(
                str(prepared),
                str(quantized),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,  # 7-bit weights: no 16-bit saturation on CPUs without VNNI (see above)
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        proto = onnx.load(str(quantized))
        meta = dict(model.meta, quantized="int8", calibration_images=len(images))
        for entry in list(proto.metadata_props):
            if entry.key == META_KEY:
                proto.metadata_props.remove(entry)
        proto.metadata_props.add(key=META_KEY, value=json.dumps(meta, sort_keys=True))
        onnx.save(proto, str(quantized))
        os.chmod(quantized, 0o644)
        os.replace(quantized, output_path)
    log.info("quantized %s to int8 with %d calibration images: %s", onnx_path, len(images), output_path)
    return output_path
