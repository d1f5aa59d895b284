"""From a training checkpoint to the files inference loads (needs torch and onnx: ``personseg[train]``).

- :mod:`~personseg.export.onnx`: a ``.pt`` checkpoint -> an ONNX file carrying its preprocessing metadata,
  checked against PyTorch.
- :mod:`~personseg.export.quantize`: an int8 copy of that file, calibrated on real photos.
"""

from personseg.export.onnx import META_KEY, MODEL_KEY, export_onnx
from personseg.export.quantize import calibration_images, quantize_int8

__all__ = ["META_KEY", "MODEL_KEY", "calibration_images", "export_onnx", "quantize_int8"]
