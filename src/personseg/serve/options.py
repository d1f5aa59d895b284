"""The query options of ``/v1/remove`` and ``/v1/mask`` (pydantic models), and ``parse_color`` for ``bg_color``.

The names follow ``personseg remove``'s flags; an unknown option is refused (400), not silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from personseg.inference import compose
from personseg.inference.remove import RemoveOptions
from personseg.inference.subject import SUBJECT_MODES

#: ``subject``'s values, read from the one definition (an OpenAPI enum; anything else is a 400 naming them).
Subject = Literal[SUBJECT_MODES]  # type: ignore[valid-type]


class MaskQuery(BaseModel):
    """Options of ``/v1/mask``; the names follow ``personseg remove``'s flags."""

    # A misspelt option is a 400, not silently ignored; nan and inf are not numbers an option can take.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str | None = Field(None, description="a shipped model name (GET /v1/models); default: the server's")
    soft: bool = Field(True, description="soft alpha; false gives a hard 0/1 mask at `threshold` (CLI --hard)")
    threshold: float | None = Field(None, gt=0, lt=1, description="person/background cut (default: the model's)")
    edge_cutoff: float = Field(0.1, ge=0, lt=0.5, description="soft alpha below C -> 0, above 1-C -> 1")
    keep_largest: int = Field(0, ge=0, le=100, description="keep only the K largest people; 0 keeps all")
    fill_holes: float = Field(0.0, ge=0, le=1, description="fill holes smaller than this fraction of the image")
    feather: float = Field(0.0, ge=0, le=100, description="blur the mask edge by this many pixels")
    crop: bool = Field(False, description="crop to the people's bounding box")
    crop_margin: float = Field(0.05, ge=0, le=1, description="margin around the crop, fraction of the box")
    subject: Subject = Field(
        "all",
        description="all: every person; main: only the most prominent person (largest x most central x sharpest) "
        "and anyone touching them, dropping bystanders and audiences",
    )

    def remove_options(self, foreground: str = "blur") -> RemoveOptions:
        return RemoveOptions(
            soft=self.soft,
            threshold=self.threshold,
            edge_cutoff=self.edge_cutoff,
            keep_largest=self.keep_largest,
            fill_holes=self.fill_holes,
            feather=self.feather,
            crop=self.crop,
            crop_margin=self.crop_margin,
            foreground=foreground,
            subject=self.subject,
        )


class RemoveQuery(MaskQuery):
    """Options of ``/v1/remove``."""

    mask_only: bool = Field(False, description="return the mask (grey) instead of the cut-out")
    bg_color: str | None = Field(
        None, description="put the person on this colour: R,G,B[,A], #RRGGBB[AA] or a name like white (CLI --bg-color)"
    )
    bgcolor: str | None = Field(None, description="the same as bg_color (the earlier name, still accepted)")
    bg_blur: float | None = Field(None, gt=0, le=200, description="keep the background, blurred by SIGMA pixels")
    foreground: Literal["blur", "none"] = Field("blur", description="foreground colour estimation for edges")
    format: Literal["png", "webp", "jpg"] = Field(
        "png", description="jpg (or jpeg) has no alpha: default background white"
    )

    @field_validator("bg_color", "bgcolor")
    @classmethod
    def _check_color(cls, value: str | None) -> str | None:
        if value is not None:
            parse_color(value)
        return value

    @field_validator("format", mode="before")
    @classmethod
    def _jpeg_is_jpg(cls, value: object) -> object:
        return "jpg" if isinstance(value, str) and value.lower() == "jpeg" else value

    @model_validator(mode="after")
    def _one_colour_name(self) -> RemoveQuery:
        if self.bg_color is not None and self.bgcolor is not None:
            raise ValueError("give bg_color or bgcolor (the same option), not both")
        return self

    @property
    def color(self) -> tuple[int, ...] | None:
        value = self.bg_color if self.bg_color is not None else self.bgcolor
        return parse_color(value) if value is not None else None


def parse_color(text: str) -> tuple[int, ...]:
    """``R,G,B[,A]``, ``#RRGGBB[AA]`` or a CSS colour name -> a 3- or 4-tuple of 0..255 (ValueError if not)."""
    return compose.parse_color(text)
