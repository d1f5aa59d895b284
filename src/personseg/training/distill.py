"""Distillation: a trained (larger, or higher-resolution) teacher's soft masks as a second training target.

With ``teacher`` set, training batches are made at the teacher's input size; the teacher predicts on them as they
are, and the student gets the same batch shrunk to its own ``input_size`` (image antialiased, mask and teacher
probabilities area-averaged). The student's loss is ``(1 - w) * task_loss + w * BCE(student, teacher)``: the
teacher's probabilities carry what the labels lack (soft hair and edges, people the labels miss) and the student
learns them at its own scale. With ``flip`` the teacher's target is the mean of its prediction and its mirror
image's (test-time flip averaging, which scores better than either alone), so the student can learn what that
costs the teacher twice over at inference. With ``band`` > 0 the teacher's target is kept only near each
label's contour (within ``band`` of the diagonal) and where the label is unknown; elsewhere the target is the
label itself, so a teacher's mistake far from any person (a flag it keeps) is not taught.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from personseg.losses._functional import contour_band
from personseg.models.checkpoint import model_from_checkpoint, read_checkpoint

log = logging.getLogger(__name__)


class Distiller:
    """Frozen teacher; ``split`` makes the student's batch and the soft target, ``blend`` mixes the losses."""

    def __init__(
        self,
        path: str | Path,
        weight: float,
        student_size: int,
        mean: list[float],
        std: list[float],
        device: torch.device,
        autocast,
        channels_last: bool = False,
        flip: bool = False,
        size: int = 0,
        band: float = 0.0,
    ) -> None:
        if not 0 < weight <= 1:
            raise ValueError(f"--distill-weight must be in (0, 1], got {weight}")
        if not 0 <= band < 0.5:
            raise ValueError(f"--distill-band must be in [0, 0.5), got {band}")
        ckpt = read_checkpoint(path)
        meta = ckpt["meta"]
        for key, ours in (("mean", mean), ("std", std)):
            theirs = [float(v) for v in meta.get(key, [])]
            if theirs != [float(v) for v in ours]:
                raise ValueError(f"{path}: the teacher normalises with {key} {theirs}, the student with {list(ours)}")
        if size:  # run the teacher at this size, whatever its metadata says
            self.size = int(size)
        else:
            own = meta.get("input_size", [student_size, student_size])
            if own[0] != own[1]:
                raise ValueError(f"{path}: the teacher's input size {own} is not square")
            self.size = int(own[0])
        if self.size < student_size:
            raise ValueError(f"{path}: the teacher's input size {self.size} is below the student's {student_size}")
        model = model_from_checkpoint(ckpt).to(device).eval()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        for p in model.parameters():
            p.requires_grad_(False)
        self.teacher = model
        self.weight = weight
        self.student_size = student_size
        self.autocast = autocast
        self.flip = flip
        self.band = band
        log.info(
            "distilling from %s (input %d, student %d, weight %.2f%s%s)",
            path,
            self.size,
            student_size,
            weight,
            ", flip-averaged" if flip else "",
            f", only within {band:g} of the diagonal of the labels' contours" if band else "",
        )

    @torch.no_grad()
    def split(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised teacher-size batch and its masks -> (student input, student masks, teacher probabilities)."""
        with self.autocast():
            soft = torch.sigmoid(self.teacher(x).float())
            if self.flip:
                mirrored = torch.sigmoid(self.teacher(torch.flip(x, dims=[3])).float())
                soft = (soft + torch.flip(mirrored, dims=[3])) / 2
        if self.band:
            soft = self.near_contours(soft, y)
        if self.size == self.student_size:
            return x, y, soft
        s = (self.student_size, self.student_size)
        small = F.interpolate(x, size=s, mode="bilinear", antialias=True, align_corners=False)
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        small = small.contiguous(memory_format=layout)
        return small, F.interpolate(y, size=s, mode="area"), F.interpolate(soft, size=s, mode="area")

    def near_contours(self, soft: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The teacher's target near each label's contour and on unknown pixels (y < 0); the label elsewhere."""
        keep = contour_band(y.clamp(min=0.0), self.band) | (y < 0)
        return torch.where(keep, soft, y)

    def blend(self, task_loss: torch.Tensor, logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        distill = F.binary_cross_entropy_with_logits(logits, soft)
        return (1 - self.weight) * task_loss + self.weight * distill
