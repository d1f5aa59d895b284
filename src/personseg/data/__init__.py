"""Data: paired folders, a fixed split, Albumentations pipelines, compositing and dataset downloads.

Importing this package needs only numpy/Pillow/OpenCV; the torch datasets live in ``personseg.data.mixture``
and the augmentation pipelines (Albumentations) in ``personseg.data.transforms``.
"""

from personseg.data.folder import DatasetError, Pair, PairedFolder, read_mask, read_rgb, scan_folder
from personseg.data.split import is_val, split_stems

__all__ = [
    "DatasetError",
    "Pair",
    "PairedFolder",
    "is_val",
    "read_mask",
    "read_rgb",
    "scan_folder",
    "split_stems",
]
