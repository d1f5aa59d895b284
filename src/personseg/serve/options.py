"""The query options of ``/v1/remove`` and ``/v1/mask``: pydantic models generated from the photo options'
fields (:mod:`personseg.inference.options`), so the API, the CLI and the UI name, document and check each option
the same way. An unknown option is refused (400), not silently ignored.

Canonical query names are the fields' (``edge_cutoff``, ``bg_color`` ...); earlier names stay accepted as
aliases (``bgcolor`` for ``bg_color``), documented as such in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from personseg.inference.options import Background, OptionError, OptionField, RemoveOptions, option_fields


class _Query(BaseModel):
    # A misspelt option is a 400, not silently ignored; nan and inf are not numbers an option can take.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str | None = Field(None, description="a shipped model name (GET /v1/models); default: the server's")

    #: query name -> (option class, field name), filled in by :func:`_query_model`
    option_owners: ClassVar[dict[str, tuple[type, str]]] = {}
    #: alias -> the canonical query name
    aliases: ClassVar[dict[str, str]] = {}

    @model_validator(mode="after")
    def _one_name_per_option(self) -> _Query:
        for alias, canonical in self.aliases.items():
            if getattr(self, alias) is not None:
                if getattr(self, canonical) is not None:
                    raise ValueError(f"give {canonical} or {alias} (the same option), not both")
                setattr(self, canonical, getattr(self, alias))
                setattr(self, alias, None)
        return self

    def build(self, cls: type, **extra: Any) -> Any:
        """The ``cls`` (RemoveOptions or Background) this query describes; a bad combination is a ValueError
        naming the query fields."""
        values = {name: getattr(self, query) for query, (owner, name) in self.option_owners.items() if owner is cls}
        names = {name: query for query, (owner, name) in self.option_owners.items() if owner is cls}
        names["image"] = "background"  # the upload's part
        try:
            return cls(**values, **extra)
        except OptionError as exc:
            raise ValueError(exc.named(names)) from None

    def remove_options(self) -> RemoveOptions:
        return self.build(RemoveOptions)


def _annotation(field: OptionField) -> Any:
    spec = field.spec
    if spec.parse is not None:

        def check(value: str | None) -> str | None:
            if value is not None:
                spec.parse(value)  # ValueError -> a 400 naming the field
            return value

        return Annotated[str | None, AfterValidator(check)]
    choices = spec.api_choices or spec.choices
    kind = Literal[choices] if choices is not None else field.kind  # an OpenAPI enum
    return kind | None if field.optional else kind


def _query_model(name: str, base: type[_Query], parts: list[tuple[type, tuple[str, ...]]], doc: str) -> type[_Query]:
    """A query model with the API fields of each (option class, fields left out) in ``parts``."""
    fields: dict[str, Any] = {}
    owners = dict(base.option_owners)
    aliases = dict(base.aliases)
    for cls, exclude in parts:
        for field in option_fields(cls):
            query = field.spec.query_for(field.name)
            if query is None or field.name in exclude:
                continue
            annotation = _annotation(field)
            fields[query] = (annotation, Field(field.default, description=field.spec.help, **field.spec.bounds()))
            owners[query] = (cls, field.name)
            for alias in field.spec.aliases:
                fields[alias] = (annotation, Field(None, description=f"the same as {query} (an earlier name)"))
                aliases[alias] = query
    model = create_model(name, __base__=base, __doc__=doc, **fields)
    model.option_owners, model.aliases = owners, aliases
    return model


#: ``/v1/mask``: the mask options (colour estimation is about cut-outs, so not here).
MaskQuery = _query_model("MaskQuery", _Query, [(RemoveOptions, ("foreground",))], "Options of /v1/mask.")


class _RemoveBase(MaskQuery):  # type: ignore[misc, valid-type]
    mask_only: bool = Field(False, description="return the mask (grey) instead of the cut-out")
    format: Literal["png", "webp", "jpg"] = Field(
        "png", description="jpg (or jpeg) has no alpha: default background white"
    )

    @field_validator("format", mode="before")
    @classmethod
    def _jpeg_is_jpg(cls, value: object) -> object:
        return "jpg" if isinstance(value, str) and value.lower() == "jpeg" else value

    def background(self, image: Any = None) -> Background:
        """The new background: the query's colour or blur, or ``image`` (the upload's ``background`` part)."""
        return self.build(Background, image=image)


#: ``/v1/remove``: the mask options, colour estimation, the background, and the output's form.
RemoveQuery = _query_model(
    "RemoveQuery", _RemoveBase, [(RemoveOptions, ()), (Background, ())], "Options of /v1/remove."
)
