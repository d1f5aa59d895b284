"""The photo options, each defined once: :class:`RemoveOptions` (how the network's probability becomes the
final alpha) and :class:`Background` (what goes behind the person).

Every field carries an :class:`Spec` as metadata: its help text, range or choices, and its name on the
command line, in the HTTP API and in the web UI. The CLI flags (:mod:`personseg.cli.options`), the server's
query models (:mod:`personseg.serve.options`) and the UI controls (:mod:`personseg.serve.ui`) are generated from
these fields, and the same :func:`problem` checks every value, so adding a photo option is adding one field
here (and using it in :func:`personseg.inference.remove.postprocess`).
"""

from __future__ import annotations

import dataclasses
import math
import operator
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from personseg.inference import compose
from personseg.inference.subject import SUBJECT_MODES

FOREGROUND_METHODS = ("blur", "ml", "none")
_SPEC = "personseg.option"


@dataclass(frozen=True)
class Spec:
    """What a user sees of one option field, wherever they set it."""

    help: str
    flag: str | None = ""
    """The CLI flag; ``""``: ``--field-name``; ``None``: no flag."""
    query: str | None = ""
    """The HTTP API's query name; ``""``: the field name; ``None``: not a query option."""
    aliases: tuple[str, ...] = ()
    """Earlier query names still accepted (documented as such)."""
    choices: tuple[str, ...] | None = None
    api_choices: tuple[str, ...] | None = None
    """Choices offered by the API when fewer than ``choices`` (a slow one left out)."""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    const: Any = None
    """The CLI value when the flag is given without one (``--fill-holes`` alone means 0.01)."""
    invert: bool = False
    """A bool whose flag sets the opposite (``--hard`` sets ``soft=False``)."""
    flag_help: str | None = None
    """The CLI flag's help when it must say something else than ``help`` (an inverted flag)."""
    metavar: str | None = None
    parse: Callable[[Any], Any] | None = None
    """Text (or a value) -> the field's value, raising ValueError (colours)."""
    ui: str | None = None
    """The web UI control's label; ``None``: not in the UI."""
    ui_panel: str = "mask"
    ui_range: tuple[float, float, float] | None = None
    """(low, high, step) of the UI slider."""
    ui_labels: Mapping[str, str] | None = None
    """Labels shown in the UI for some choices."""
    ui_widget: str | None = None
    """``color`` or ``image`` for a value the UI cannot tell from the type (a checkbox, radio or slider it can)."""

    def flag_for(self, name: str) -> str | None:
        return f"--{name.replace('_', '-')}" if self.flag == "" else self.flag

    def query_for(self, name: str) -> str | None:
        return name if self.query == "" else self.query

    def bounds(self) -> dict[str, float]:
        """The range as pydantic's ``Field`` takes it."""
        return {k: getattr(self, k) for k in ("ge", "gt", "le", "lt") if getattr(self, k) is not None}


def option(default: Any, help: str, **spec: Any) -> Any:  # noqa: A002 - the word every CLI library uses
    """A dataclass field with its :class:`Spec`."""
    return dataclasses.field(default=default, metadata={_SPEC: Spec(help=help, **spec)})


@dataclass(frozen=True)
class OptionField:
    """One option of a spec'd dataclass: name, default, value type and :class:`Spec`."""

    name: str
    default: Any
    kind: type | None
    """bool, int, float or str for plain values; None for anything else (a path, an array, a parsed colour)."""
    optional: bool
    spec: Spec


def option_fields(cls: type) -> Iterator[OptionField]:
    """The spec'd fields of ``cls``, in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if _SPEC not in f.metadata:
            continue
        args = typing.get_args(hints[f.name]) if isinstance(hints[f.name], types.UnionType) else (hints[f.name],)
        plain = [a for a in args if a is not type(None)]
        kind = plain[0] if len(plain) == 1 and plain[0] in (bool, int, float, str) else None
        yield OptionField(f.name, f.default, kind, type(None) in args or f.default is None, f.metadata[_SPEC])


def problem(field: OptionField, value: Any) -> str | None:
    """What is wrong with ``value`` for ``field`` (a phrase to put after its name), or None."""
    spec = field.spec
    if value is None:
        return None if field.optional else "must be given"
    if field.kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if field.kind is int and value != int(value):
            return f"must be a whole number, got {value!r}"
        low = (">=", spec.ge) if spec.ge is not None else (">", spec.gt) if spec.gt is not None else None
        high = ("<=", spec.le) if spec.le is not None else ("<", spec.lt) if spec.lt is not None else None
        holds = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
        if any(b is not None and not holds[b[0]](value, b[1]) for b in (low, high)):
            wanted = " and ".join(f"{op} {limit:g}" for op, limit in (b for b in (low, high) if b is not None))
            return f"must be {wanted}, got {value:g}"
    if spec.choices is not None and value not in spec.choices:
        return f"{value!r} is not one of {', '.join(spec.choices)}"
    return None


class OptionError(ValueError):
    """A bad option value or combination. ``str()`` names the fields; :meth:`named` the flags or query names the
    user typed instead (``template`` has a ``{}`` per field)."""

    def __init__(self, template: str, *fields: str) -> None:
        super().__init__(template.format(*fields))
        self.template = template
        self.fields = fields

    def named(self, names: Mapping[str, str]) -> str:
        return self.template.format(*(names.get(f, f) for f in self.fields))


def check_options(obj: Any) -> None:
    """Check (and parse) every spec'd field of ``obj``; OptionError names the first bad one."""
    for field in option_fields(type(obj)):
        value = getattr(obj, field.name)
        if field.spec.parse is not None and value is not None:
            try:
                value = field.spec.parse(value)
            except ValueError as exc:
                raise OptionError("{}: " + str(exc).replace("{", "{{").replace("}", "}}"), field.name) from None
            setattr(obj, field.name, value)
        bad = problem(field, value)
        if bad is not None:
            raise OptionError("{}: " + bad.replace("{", "{{").replace("}", "}}"), field.name)


@dataclass
class RemoveOptions:
    """How the network's probability becomes the final alpha. Field names match ``remove_background``'s kwargs;
    the CLI, API and UI names come from each field's :class:`Spec`."""

    soft: bool = option(
        True,
        "soft alpha (anti-aliased edges, hair); false gives a hard 0/1 mask at the threshold",
        flag="--hard",
        invert=True,
        flag_help="hard 0/1 mask at the threshold instead of a soft alpha",
        ui="Soft edges (hair, anti-aliasing)",
    )
    edge_cutoff: float = option(
        0.1,
        "soft alpha below C becomes 0 and above 1-C becomes 1, clearing faint fog at the edge; 0 keeps the raw "
        "probability",
        ge=0.0,
        lt=0.5,
        metavar="C",
    )
    threshold: float | None = option(
        None,
        "person/background cut in (0, 1) for a hard mask, keep_largest, fill_holes and crop (default: the model's own)",
        gt=0.0,
        lt=1.0,
        ui="Threshold (person/background cut, hard edges)",
        ui_range=(0.05, 0.95, 0.05),
    )
    keep_largest: int = option(
        0, "keep only the K largest people (connected regions); 0 keeps all", ge=0, le=100, metavar="K"
    )
    fill_holes: float = option(
        0.0,
        "fill holes in the mask smaller than this fraction of the image area; 0: off (the flag alone: 0.01)",
        ge=0.0,
        le=1.0,
        const=0.01,
        metavar="FRACTION",
    )
    feather: float = option(0.0, "blur the mask edge by this many pixels", ge=0.0, le=100.0, metavar="PX")
    matting: bool = option(
        False,
        "alpha matting around the edge for hair (slow; needs: pip install 'personseg[matting]')",
        query=None,
    )
    foreground: str = option(
        "blur",
        "foreground colour estimation so cut-outs carry no old-background halo: blur (fast), ml (pymatting, "
        "slower) or none",
        choices=FOREGROUND_METHODS,
        api_choices=("blur", "none"),
    )
    zoom: bool = option(
        True,
        "a second network pass on the crop around the people found, averaged with the first, when the model asks "
        "for it (personseg-default does): finer masks for people who fill little of the photo or frame, for up to "
        "twice the network time (in a video the crop is held steady and stabilised on its own)",
        flag="--no-zoom",
        invert=True,
        flag_help="no second pass on the crop around the people (faster)",
    )
    crop: bool = option(False, "crop the outputs to the people's bounding box (photos only)")
    crop_margin: float = option(
        0.05, "margin around the crop, as a fraction of the box size", ge=0.0, le=1.0, metavar="FRACTION"
    )
    subject: str = option(
        "all",
        "all: every person; main: only the most prominent person (largest x most central x sharpest) and anyone "
        "touching them, dropping bystanders and audiences; in a video the same person stays chosen from frame to "
        "frame, even when someone bigger walks past",
        choices=SUBJECT_MODES,
        ui="People",
        ui_panel="main",
        ui_labels={"main": "main subject only"},
    )

    def __post_init__(self) -> None:
        check_options(self)
        if self.matting and not self.soft:
            raise OptionError("{} makes a soft alpha: it cannot be combined with a hard mask ({})", "matting", "soft")

    def threshold_for(self, model: Any) -> float:
        """The person / background cut: this option's, else the one in ``model``'s metadata."""
        return self.threshold if self.threshold is not None else float(model.threshold)


def _colour(value: Any) -> tuple[int, ...]:
    return compose.parse_color(value)


@dataclass(eq=False)
class Background:
    """What goes behind the person: at most one of a colour, an image, the blurred scene or a video.

    An empty ``Background()`` means none: a transparent cut-out (a video composite then uses chroma green).
    """

    color: tuple[int, ...] | None = option(
        None,
        "put the person on this colour: R,G,B[,A], #RRGGBB[AA], rgb()/rgba() or a name like white",
        flag="--bg-color",
        query="bg_color",
        aliases=("bgcolor",),
        parse=_colour,
        metavar="COLOR",
        ui="colour",
        ui_panel="background",
        ui_widget="color",
    )
    image: Any = option(
        None,
        "put the person on this image (scaled to cover); in the API: the upload's 'background' part",
        flag="--bg-image",
        query=None,
        metavar="PATH",
        ui="image",
        ui_panel="background",
        ui_widget="image",
    )
    blur: float | None = option(
        None,
        "keep the background but blur it by SIGMA pixels (the flag alone: 15)",
        flag="--bg-blur",
        query="bg_blur",
        gt=0.0,
        le=200.0,
        const=15.0,
        metavar="SIGMA",
        ui="blur",
        ui_panel="background",
        ui_range=(1, 60, 1),
    )
    video: Any = option(
        None,
        "put the person on another video (scaled to cover, looped to length); video and live only",
        flag="--bg-video",
        query=None,
        metavar="PATH",
    )

    def __post_init__(self) -> None:
        check_options(self)
        given = self.given()
        if len(given) > 1:
            raise OptionError("give one background, not " + " and ".join("{}" for _ in given), *given)

    def given(self) -> list[str]:
        """The fields set (at most one once constructed)."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    @property
    def kind(self) -> str | None:
        """``color``, ``image``, ``blur``, ``video``, or None for no new background."""
        given = self.given()
        return given[0] if given else None

    @property
    def see_through(self) -> bool:
        """A colour with alpha < 255: the result keeps an alpha channel."""
        return self.color is not None and len(self.color) == 4 and self.color[3] < 255

    def loaded(self, max_pixels: int | None = None, max_memory: int | None = None) -> Background:
        """The same background with its image read (once, for a batch; a bad file fails here, before any work)."""
        if self.image is None or isinstance(self.image, np.ndarray):
            return self
        from personseg.inference.io import read_image

        rgb = read_image(self.image, max_pixels, name="background", max_memory=max_memory).rgb
        return dataclasses.replace(self, image=rgb)

    def canvas(self, image: np.ndarray, alpha: np.ndarray, max_memory: int | None = None) -> np.ndarray:
        """The new background for ``image`` with person ``alpha``: H x W x 3 (x 4 for a see-through colour)."""
        h, w = alpha.shape
        if self.color is not None:
            return compose.color_background(h, w, self.color)
        if self.image is not None:
            return compose.cover(self.loaded(max_memory=max_memory).image, h, w)
        if self.blur is not None:
            return compose.blurred_background(image, alpha, float(self.blur))
        raise ValueError(f"a {self.kind or 'missing'} background has no single picture: give a colour, image or blur")
