"""Scoring segmentation: numpy evaluation of any model at full resolution, and the torch metrics of training.

- :mod:`~personseg.evaluation.scoring` (re-exported here): per-image IoU, Dice, boundary IoU and MAE on
  images/ + masks/ folders, the training config's validation split, macro averages and temporal scores. numpy
  only, so ``personseg evaluate`` runs on the inference-only install.
- :mod:`~personseg.evaluation.metrics`: the same counts on torch tensors (``get_stats`` then ``iou_score``,
  ``MetricAccumulator``) for the training loop; import it by its full name (it needs torch).
"""

from personseg.evaluation.scoring import (
    COUNT_KEYS,
    MAIN_SUBJECT,
    SCORE_KEYS,
    EvalResult,
    SplitConfig,
    boundary_band,
    boundary_iou,
    confusion,
    evaluate_folder,
    evaluation_folders,
    macro_average,
    pooled,
    read_split_config,
    score_image,
    set_apart,
    temporal_scores,
    validation_stems,
)

__all__ = [
    "COUNT_KEYS",
    "MAIN_SUBJECT",
    "SCORE_KEYS",
    "EvalResult",
    "SplitConfig",
    "boundary_band",
    "boundary_iou",
    "confusion",
    "evaluate_folder",
    "evaluation_folders",
    "macro_average",
    "pooled",
    "read_split_config",
    "score_image",
    "set_apart",
    "temporal_scores",
    "validation_stems",
]
