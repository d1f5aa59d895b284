"""Peer models for side-by-side benchmarks (not part of the package).

MediaPipe selfie segmentation (../shared/anchors, Apache-2.0) run with ai-edge-litert the way its users run it:
plain (squashing) resize of the whole photo to the model's input, then a bilinear resize of the probability
back to the photo's size.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

DEFAULT_MEDIAPIPE = Path(__file__).resolve().parents[1] / ".." / "shared" / "anchors" / "selfie_segmentation.tflite"


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
