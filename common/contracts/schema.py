"""The shape of a contract's terms: one pydantic model, and the model's tool schema made from it.

`Corrections` lists every term with its type (the rules of `values.py`) and a description for
a model; it validates a CSM's corrections and each value of a model's answer.
`tool_input_schema()` is the JSON schema of that model plus the two books a model fills beside
the terms (a confidence and a `Citation` for each term), generated, so the schema a model fills
cannot drift from what is checked.

The schema keeps to what Claude's `input_schema` and Gemini's function declarations both take:
every object inlined (no `$ref`/`$defs`), no `anyOf` (a term left out is absent, never null),
only `type`, `description`, `properties`, `required`, `items` and `maxItems`. Anything else a
model would generate is refused when the schema is built.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from common.contracts.evidence import MAX_QUOTE_CHARS
from common.contracts.values import (
    MAX_AMOUNT,
    Amount,
    Boolean,
    Currency,
    Days,
    IsoDate,
    Months,
    Name,
    ShortText,
    decimal_number,
    plain_text,
)

TOOL_NAME = "record_contract_terms"
TOOL_DESCRIPTION = (
    "Record the terms this contract states. Give only what the text says; leave out a term it does not "
    "state. For every term given, add its confidence (0-1) and its evidence: a short verbatim quote copied "
    "exactly from the text (no ellipses, no paraphrase) and the number of the page the quote is on."
)

# A model's answer is read leniently (`context={"lenient": True}`): an unreadable e-mail address
# becomes null and a list item that cannot be read is left out, where a correction gets a 400.


def is_lenient(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("lenient"))


def _as_list(value: object) -> object:
    # A lone item where a list was expected is a list of one.
    return [value] if isinstance(value, str | Mapping) else value


# -- the items of the list terms -------------------------------------------------------------------


class _Item(BaseModel):
    # Models add keys of their own to list items: ignored, not an error.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)
    name: Name

    @model_validator(mode="before")
    @classmethod
    def _named_only(cls, value: object) -> object:
        return {"name": value} if isinstance(value, str) else value


class Party(_Item):
    name: Name = Field(description="Legal name as written.")
    role: ShortText | None = Field(None, description="e.g. customer, vendor, reseller.")


class Entitlement(_Item):
    quantity: Annotated[int | float, WithJsonSchema({"type": "number"})] | None = None
    unit: ShortText | None = Field(None, description="e.g. seats, users, GB.")
    unit_price: Amount | None = None

    @model_validator(mode="before")
    @classmethod
    def _quantity_with_unit(cls, value: object) -> object:
        # "100 seats" is a quantity of 100 in seats.
        if isinstance(value, Mapping) and isinstance(value.get("quantity"), str):
            match = re.fullmatch(r"\s*([\d,.' ]*\d)\s*([^\d\s].*)?", value["quantity"])
            if match:
                value = {**value, "quantity": float(decimal_number(match[1]))}
                if match[2] and not value.get("unit"):
                    value["unit"] = match[2].strip()
        return value

    @field_validator("quantity", mode="before")
    @classmethod
    def _count(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and value.strip().casefold() == "unlimited":
            return None
        if isinstance(value, bool) or (value is not None and not isinstance(value, int | float)):
            if is_lenient(info):
                return None
            raise ValueError("must be a number")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @field_validator("quantity")
    @classmethod
    def _not_negative(cls, value: int | float | None) -> int | float | None:
        if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_AMOUNT):
            raise ValueError("must be a number between 0 and 10^15")
        return value


class Stakeholder(_Item):
    title: ShortText | None = None
    email: str | None = None

    @field_validator("email", mode="before")
    @classmethod
    def _email(cls, value: object, info: ValidationInfo) -> str | None:
        from pydantic.networks import validate_email

        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            if not isinstance(value, str):
                raise ValueError("must be an e-mail address")
            return validate_email(value.strip())[1]
        except (ValueError, PydanticCustomError):
            if is_lenient(info):
                return None
            raise ValueError("must be an e-mail address") from None


def _items(model: type[_Item]) -> Callable[[object, ValidationInfo], object]:
    def read(value: object, info: ValidationInfo) -> object:
        value = _as_list(value)
        if not is_lenient(info) or not isinstance(value, list):
            return value
        # From a model: keep the items that can be read, leave out the others.
        kept = []
        for item in value:
            try:
                kept.append(model.model_validate(item, context=info.context))
            except ValidationError:
                continue
        if value and not kept:
            raise ValueError("has no item that can be read")
        return kept

    return read


def _clauses(value: object, info: ValidationInfo) -> object:
    value = _as_list(value)
    if is_lenient(info) and isinstance(value, list):
        return [item for item in value if isinstance(item, str) and item.strip()]
    return value


def item_key(text: str) -> str:
    """The name by which list items are told apart: case and whitespace do not count."""
    return " ".join(text.casefold().split())


def _unique(items: list[Any]) -> list[Any]:
    """Each item once, names compared by `item_key`."""
    seen: dict[str, int] = {}
    kept: list[Any] = []
    for item in items:
        key = item_key(item if isinstance(item, str) else item.name if isinstance(item, _Item) else item["name"])
        if key not in seen:
            seen[key] = len(kept)
            kept.append(item)
    return kept


_UNIQUE = AfterValidator(_unique)
Clause = Annotated[str, BeforeValidator(plain_text(MAX_QUOTE_CHARS))]


# -- every term --------------------------------------------------------------------------------------


class Corrections(BaseModel):
    """The terms a CSM corrects (`PATCH /contracts/{id}` `{"extracted": {...}}`), each optional.

    Validated like a model's values: dates in ISO or written forms, amounts as numbers or
    "$120,000", durations as numbers or "90 days"; null clears a term. Unknown names are
    refused. Pass `model_dump(exclude_unset=True)` to `terms.apply_corrections`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    parties: Annotated[list[Party], BeforeValidator(_items(Party)), Field(max_length=50), _UNIQUE] | None = Field(
        None, description="The parties that sign the contract."
    )
    effective_date: IsoDate | None = Field(None, description="The date the contract takes effect, YYYY-MM-DD.")
    end_date: IsoDate | None = Field(None, description="The date the current term ends, YYYY-MM-DD.")
    renewal_date: IsoDate | None = Field(
        None, description="The date the contract renews or is up for renewal, YYYY-MM-DD."
    )
    auto_renew: Boolean | None = Field(None, description="Whether the contract renews automatically.")
    notice_period_days: Days | None = Field(
        None, description="Days of notice needed to terminate or not renew (calendar days)."
    )
    term_months: Months | None = Field(None, description="The length of the initial term in months.")
    total_value: Amount | None = Field(None, description="The total contract value over the term: a plain number.")
    arr: Amount | None = Field(None, description="The annual recurring revenue, only if the contract states it.")
    currency: Currency | None = Field(None, description="ISO 4217 code of the amounts, e.g. USD.")
    payment_terms: Annotated[str, BeforeValidator(plain_text(500))] | None = Field(
        None, description="e.g. Net 30, annually in advance."
    )
    entitlements: (
        Annotated[list[Entitlement], BeforeValidator(_items(Entitlement)), Field(max_length=200), _UNIQUE] | None
    ) = Field(None, description="What the customer buys: products, seats, usage.")
    stakeholders: (
        Annotated[list[Stakeholder], BeforeValidator(_items(Stakeholder)), Field(max_length=100), _UNIQUE] | None
    ) = Field(None, description="People named in the contract: signatories, contacts.")
    governing_law: Annotated[str, BeforeValidator(plain_text(200))] | None = Field(
        None, description="The governing law, e.g. State of New York."
    )
    termination_clauses: Annotated[list[Clause], BeforeValidator(_clauses), Field(max_length=50), _UNIQUE] | None = (
        Field(None, description="Each termination right, in a sentence.")
    )


FIELDS: tuple[str, ...] = tuple(Corrections.model_fields)
LIST_FIELDS = frozenset({"parties", "entitlements", "stakeholders", "termination_clauses"})


# -- what a model fills ------------------------------------------------------------------------------


class Citation(BaseModel):
    model_config = ConfigDict(defer_build=True)
    quote: str = Field(description="Copied exactly from the text, one sentence.")
    page: int = Field(description="The page number the quote is on.")


class _Answer(Corrections):
    # A model's extra keys are ignored, not refused: no `additionalProperties` in its schema.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


def _per_term(name: str, annotation: Any) -> type[BaseModel]:
    """A model with one optional field of `annotation` for each term."""
    fields: dict[str, Any] = {field: (annotation | None, None) for field in FIELDS}
    return create_model(name, **fields)


def tool_input_schema() -> dict[str, Any]:
    """The input schema of the forced tool `record_contract_terms`: a fresh copy for each caller."""
    return copy.deepcopy(_tool_input_schema())


@functools.cache
def _tool_input_schema() -> dict[str, Any]:
    # The terms, then a confidence and a citation for each term given. This describes what a
    # model is asked for; its answer is read more leniently than that (`terms.verify`). Built on
    # first use, so importing this module costs no schema generation.
    tool_input = create_model(
        "ToolInput",
        __base__=_Answer,
        confidence=(
            _per_term("Confidence", float),
            Field(description="For each term given: how sure you are it is right, from 0 to 1."),
        ),
        evidence=(
            _per_term("Evidence", Citation),
            Field(description="For each term given: a verbatim quote from the text that states it, and its page."),
        ),
    )
    return inline_schema(tool_input)


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of `model` in the dialect both providers take (TypeError if it cannot be)."""
    generated = model.model_json_schema(schema_generator=_ToolSchema)
    return _inline(generated, generated.get("$defs", {}), "")


class _ToolSchema(GenerateJsonSchema):
    """pydantic's JSON schema, with a term that may be left out neither nullable nor defaulted."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])


_KEPT = frozenset({"type", "description", "required", "maxItems"})
_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean"})


def _inline(node: Mapping[str, Any], defs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`node` with every `$ref` replaced by its definition and titles left out; any keyword
    outside the dialect both providers take is refused (TypeError), naming where it is."""
    if "$ref" in node:
        target = defs[str(node["$ref"]).removeprefix("#/$defs/")]
        return _inline({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs, where)
    inlined: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            inlined[key] = {name: _inline(child, defs, f"{where}.{name}".lstrip(".")) for name, child in value.items()}
        elif key == "items":
            inlined[key] = _inline(value, defs, f"{where}[]")
        elif key in _KEPT and (key != "type" or value in _TYPES):
            inlined[key] = value
        elif key not in {"title", "$defs"}:
            raise TypeError(
                f"the tool schema would use {key}={value!r} at {where or 'the top'}: not every provider takes it"
            )
    return inlined
