"""A contract's structured terms, kept only where the document says them (DESIGN §8).

A model reads the text and fills `tool_input_schema()`; `verify` turns its answer into the
`extracted` that is stored: each value normalised (ISO dates, numbers with a currency, whole
days and months), then kept only if its evidence quote occurs on the page it names (or, the
page corrected, on another), otherwise dropped and the drop recorded. Long contracts are read
in `chunks` and the verified parts `merge`d; a CSM's corrections (`apply_corrections`) carry no
evidence and survive a re-parse (`keep_corrections`). The contract text is only ever searched:
nothing here acts on what it says.

Matching a quote: both sides are NFKC-normalised, case-folded, typographic quotes, apostrophes
and dashes made plain, soft hyphens and zero-width characters removed, and whitespace runs
collapsed to one space; when that finds nothing, whitespace and hyphens are ignored altogether
(PDF text breaks words at line ends and loses or adds spaces). A quote that runs over a page end
is cited at the page where it starts. A quote shorter than 3 or longer than 2,000 characters is
not evidence.
"""

from __future__ import annotations

import copy
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from common.contracts.text import Document, Page
from common.currencies import is_currency

FIELDS: tuple[str, ...] = (
    "parties",
    "effective_date",
    "end_date",
    "renewal_date",
    "auto_renew",
    "notice_period_days",
    "term_months",
    "total_value",
    "arr",
    "currency",
    "payment_terms",
    "entitlements",
    "stakeholders",
    "governing_law",
    "termination_clauses",
)
LIST_FIELDS = frozenset({"parties", "entitlements", "stakeholders", "termination_clauses"})
DropReason = Literal["invalid", "evidence_not_found"]

TOOL_NAME = "record_contract_terms"
TOOL_DESCRIPTION = (
    "Record the terms this contract states. Give only what the text says; leave out a term it does not "
    "state. For every term given, add its confidence (0-1) and its evidence: a short verbatim quote copied "
    "exactly from the text (no ellipses, no paraphrase) and the number of the page the quote is on."
)

MIN_QUOTE_CHARS = 3
MAX_QUOTE_CHARS = 2_000


class TermsError(Exception):
    """The model's answer does not fit the schema at all: the contract is not parsed."""


# -- normalising one value ----------------------------------------------------------------------
#
# The same rules read a model's answer and a CSM's correction. A model's answer is read
# leniently (`context={"lenient": True}`): an unreadable e-mail address becomes null and a
# list item that cannot be read is left out, where a correction gets a 400 for them.

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_DAY_MONTH_YEAR = re.compile(rf"(\d{{1,2}}) (?:day of )?({_MONTH})\.? (\d{{4}})")
_MONTH_DAY_YEAR = re.compile(rf"({_MONTH})\.? (\d{{1,2}}) (\d{{4}})")
_YEAR_MONTH_DAY = re.compile(
    r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[t ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?"
)
_NUMERIC_DATE = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")


def _iso_date(value: object) -> str:
    """A date as YYYY-MM-DD, from ISO or a written form; an ambiguous numeric date is refused.

    "01/02/2026" may be 1 February or 2 January: it is accepted only when one of the numbers is
    over 12 (13/02/2026, 02/13/2026) or both are the same, whatever the separator.
    """
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str):
        raise ValueError("must be a date such as 2026-01-31")
    text = _date_words(value)
    if match := _YEAR_MONTH_DAY.fullmatch(value.strip().casefold()):
        year, month, day = (int(g) for g in match.groups())
    elif match := _DAY_MONTH_YEAR.fullmatch(text):
        day, month, year = int(match[1]), _MONTHS[match[2]], int(match[3])
    elif match := _MONTH_DAY_YEAR.fullmatch(text):
        month, day, year = _MONTHS[match[1]], int(match[2]), int(match[3])
    elif match := _NUMERIC_DATE.fullmatch(text):
        (day, month), year = _day_month(int(match[1]), int(match[2]), value), int(match[3])
    else:
        raise ValueError("must be a date such as 2026-01-31")
    if not 1900 <= year <= 2199:
        raise ValueError("must be a date between 1900 and 2199")
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        raise ValueError(f"{value.strip()} is not a calendar date") from None


def _date_words(value: str) -> str:
    """A written date reduced to "1 january 2026" or "january 1 2026" (or digits as they were)."""
    text = " ".join(unicodedata.normalize("NFKC", value).casefold().replace(",", " ").split())
    text = re.sub(rf"^(?:{_WEEKDAY}) ", "", text)
    text = re.sub(r"\bthe ", "", text)
    text = re.sub(r"(\d)(?:st|nd|rd|th)\b", r"\1", text)
    return text.replace("-", " ") if re.search(r"[a-z]", text) else text  # 1-Jan-2026


def _day_month(first: int, second: int, value: str) -> tuple[int, int]:
    """Day and month of a numeric date, when only one reading is a date (or both are the same)."""
    if first > 12 or first == second:
        return first, second
    if second > 12:
        return second, first
    raise ValueError(
        f"{value.strip()} could mean day {first} of month {second} or day {second} of month {first}; "
        "give it as YYYY-MM-DD"
    )


_SYMBOLS = {
    "us$": "USD",
    "usd$": "USD",
    "a$": "AUD",
    "au$": "AUD",
    "c$": "CAD",
    "ca$": "CAD",
    "nz$": "NZD",
    "hk$": "HKD",
    "s$": "SGD",
    "r$": "BRL",
    "mx$": "MXN",
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
    "₩": "KRW",
    "₽": "RUB",
    "₺": "TRY",
    "₪": "ILS",
    "zł": "PLN",
}
_CURRENCY_NAMES = {
    "dollar": "USD",
    "us dollar": "USD",
    "united states dollar": "USD",
    "euro": "EUR",
    "pound": "GBP",
    "pound sterling": "GBP",
    "british pound": "GBP",
    "sterling": "GBP",
    "yen": "JPY",
    "japanese yen": "JPY",
    "swiss franc": "CHF",
    "canadian dollar": "CAD",
    "australian dollar": "AUD",
    "indian rupee": "INR",
}
_SCALES = {
    "k": 1_000,
    "thousand": 1_000,
    "m": 1_000_000,
    "mm": 1_000_000,
    "mn": 1_000_000,
    "mio": 1_000_000,
    "million": 1_000_000,
    "b": 1_000_000_000,
    "bn": 1_000_000_000,
    "billion": 1_000_000_000,
}
_SYMBOL = "|".join(re.escape(s) for s in sorted(_SYMBOLS, key=len, reverse=True))
_SCALE = "|".join(sorted(_SCALES, key=len, reverse=True))
_MONEY = re.compile(
    rf"(?P<before>{_SYMBOL}|[a-z]{{3}})?\s*"
    r"(?P<number>\d[\d,.' ]*)\s*"
    rf"(?P<scale>{_SCALE})?\.?\s*"
    rf"(?P<after>{_SYMBOL}|[a-z]{{3}})?"
)
MAX_AMOUNT = 10**15


def _currency(value: object) -> str:
    """An ISO 4217 code, upper-case, from a code, a symbol or a common name ("$" is USD)."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 4217 code such as USD")
    text = " ".join(value.strip().casefold().split())
    code = _SYMBOLS.get(text) or _CURRENCY_NAMES.get(text.removesuffix("s")) or text.upper()
    if not is_currency(code):
        raise ValueError("must be an ISO 4217 code such as USD")
    return code


def _decimal(digits: str) -> Decimal:
    """A number written with thousands separators and a decimal point or comma.

    With both "," and ".", the last is the decimal separator. A lone separator followed by
    exactly three digits groups thousands (1,200 and 1.200 are both 1200) unless the whole part
    is 0 (0.125); any other lone separator is the decimal one (1.5, 1,5). Repeated separators
    group thousands (1.200.000).
    """
    text = re.sub(r"[ ']", "", digits).rstrip(".,")
    if "," in text and "." in text:
        decimal_mark = "," if text.rfind(",") > text.rfind(".") else "."
        whole, _, fraction = text.rpartition(decimal_mark)
        groups = re.split(r"[,.]", whole)
    else:
        mark = "," if "," in text else "."
        parts = text.split(mark)
        if len(parts) == 1:
            whole, fraction, groups = text, "", [text]
        elif len(parts) > 2 or (len(parts[1]) == 3 and parts[0].lstrip("0")):
            whole, fraction, groups = text, "", parts
        else:
            whole, fraction, groups = parts[0], parts[1], [parts[0]]
    # Thousands in threes, or in the Indian lakh grouping (1,00,000).
    grouped = all(len(g) == 3 for g in groups[1:]) or (len(groups[-1]) == 3 and all(len(g) == 2 for g in groups[1:-1]))
    if not all(g.isdigit() for g in groups) or not grouped or (fraction and not fraction.isdigit()):
        raise ValueError(f"{digits.strip()} is not a number")
    return Decimal("".join(groups) + (f".{fraction}" if fraction else ""))


def _money(value: object) -> tuple[int | float, str | None]:
    """An amount ≥ 0 and the currency its text names, if any: "€1.2M" is (1200000, "EUR")."""
    if isinstance(value, bool):
        raise ValueError("must be an amount such as 120000")
    if isinstance(value, int | float):
        return _amount_number(Decimal(str(value))), None
    if not isinstance(value, str):
        raise ValueError("must be an amount such as 120000")
    text = " ".join(unicodedata.normalize("NFKC", value).casefold().replace("\u2019", "'").split())
    match = _MONEY.fullmatch(text)
    if match is None:
        raise ValueError("must be an amount such as 120000 or $120,000")
    named = [_currency(part) for part in (match["before"], match["after"]) if part]
    if len(set(named)) > 1:
        raise ValueError("names two currencies")
    amount = _decimal(match["number"]) * _SCALES.get(match["scale"] or "", 1)
    return _amount_number(amount), (named[0] if named else None)


def _amount_number(amount: Decimal) -> int | float:
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        raise ValueError("must be an amount between 0 and 10^15")
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _amount(value: object) -> int | float:
    return _money(value)[0]


_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "a": 1,
    "an": 1,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_NUMBER_WORDS = "|".join(sorted([*_UNITS, *_TENS], key=len, reverse=True))
_DURATION = re.compile(
    rf"(?P<words>(?:{_NUMBER_WORDS})(?:[- ](?:{_NUMBER_WORDS}))*(?= |\(|$))?\s*"
    r"(?:\(?(?P<digits>\d+(?:\.\d+)?)\)?)?\s*(?P<unit>[a-z]+)?\b"
)
_DAYS_PER = {"day": 1, "week": 7, "month": 30, "year": 365}
_MONTHS_PER = {"month": 1, "year": 12}


def _duration(value: object, per_unit: Mapping[str, int], default_unit: str, bounds: tuple[int, int]) -> int:
    """A whole number of `default_unit`s from a number or "thirty (30) days", "one year"…"""
    example = f"must be a whole number of {default_unit}s such as 12"
    if isinstance(value, bool):
        raise ValueError(example)
    if isinstance(value, int | float):
        number: float = value
    elif isinstance(value, str):
        text = " ".join(value.casefold().replace("calendar ", "").split())
        if re.search(r"\b(?:business|working)\b", text):
            raise ValueError(f"must be calendar {default_unit}s, not business or working days")
        match = _DURATION.match(text)
        if match is None or not (match["words"] or match["digits"]):
            raise ValueError(example)
        unit = (match["unit"] or default_unit).removesuffix("s")
        if unit not in per_unit:
            raise ValueError(f"must be in {' or '.join(f'{u}s' for u in per_unit)}")
        count = float(match["digits"]) if match["digits"] else _words_number(match["words"])
        number = count * per_unit[unit]
    else:
        raise ValueError(example)
    if not math.isfinite(number) or number != int(number):
        raise ValueError(example)
    low, high = bounds
    if not low <= int(number) <= high:
        raise ValueError(f"must be between {low} and {high} {default_unit}s")
    return int(number)


def _words_number(words: str) -> int:
    total = 0
    for word in re.split(r"[- ]", words):
        total += _TENS.get(word, 0) + _UNITS.get(word, 0)
    return total


def _days(value: object) -> int:
    return _duration(value, _DAYS_PER, "day", (0, 3_650))


def _months(value: object) -> int:
    return _duration(value, _MONTHS_PER, "month", (1, 1_200))


_TRUE = frozenset(
    {"true", "yes", "y", "automatic", "automatically", "auto-renew", "auto renew", "renews automatically"}
)
_FALSE = frozenset({"false", "no", "n", "none", "manual", "does not renew", "no auto-renew"})


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = " ".join(value.casefold().split())
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError("must be true or false")


def _text(max_length: int) -> Callable[[object], str]:
    def clean(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError("must be text")
        text = " ".join(value.split())
        if not text:
            raise ValueError("may not be empty")
        if len(text) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return text

    return clean


def _lenient(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("lenient"))


def _as_list(value: object) -> object:
    # A lone item where a list was expected is a list of one.
    return [value] if isinstance(value, str | Mapping) else value


Name = Annotated[str, BeforeValidator(_text(200))]
ShortText = Annotated[str, BeforeValidator(_text(200))]
IsoDate = Annotated[str, BeforeValidator(_iso_date)]
Amount = Annotated[int | float, BeforeValidator(_amount)]
Days = Annotated[int, BeforeValidator(_days)]
Months = Annotated[int, BeforeValidator(_months)]
Currency = Annotated[str, BeforeValidator(_currency)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
Clause = Annotated[str, BeforeValidator(_text(MAX_QUOTE_CHARS))]


class _Item(BaseModel):
    # Models add keys of their own to list items: ignored, not an error.
    model_config = ConfigDict(extra="ignore", frozen=True)
    name: Name

    @model_validator(mode="before")
    @classmethod
    def _named_only(cls, value: object) -> object:
        return {"name": value} if isinstance(value, str) else value


class Party(_Item):
    role: ShortText | None = None


class Entitlement(_Item):
    quantity: int | float | None = None
    unit: ShortText | None = None
    unit_price: Amount | None = None

    @model_validator(mode="before")
    @classmethod
    def _quantity_with_unit(cls, value: object) -> object:
        # "100 seats" is a quantity of 100 in seats.
        if isinstance(value, Mapping) and isinstance(value.get("quantity"), str):
            match = re.fullmatch(r"\s*([\d,.' ]*\d)\s*([^\d\s].*)?", value["quantity"])
            if match:
                value = {**value, "quantity": float(_decimal(match[1]))}
                if match[2] and not value.get("unit"):
                    value["unit"] = match[2].strip()
        return value

    @field_validator("quantity", mode="before")
    @classmethod
    def _count(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and value.strip().casefold() == "unlimited":
            return None
        if isinstance(value, bool) or (value is not None and not isinstance(value, int | float)):
            if _lenient(info):
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
            if _lenient(info):
                return None
            raise ValueError("must be an e-mail address") from None


def _items(model: type[_Item]) -> Callable[[object, ValidationInfo], object]:
    def read(value: object, info: ValidationInfo) -> object:
        value = _as_list(value)
        if not _lenient(info) or not isinstance(value, list):
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
    if _lenient(info) and isinstance(value, list):
        return [item for item in value if isinstance(item, str) and item.strip()]
    return value


def _unique(items: list[Any]) -> list[Any]:
    """Each item once, names compared case- and whitespace-insensitively."""
    seen: dict[str, int] = {}
    kept: list[Any] = []
    for item in items:
        key = _item_key(item if isinstance(item, str) else item.name if isinstance(item, _Item) else item["name"])
        if key not in seen:
            seen[key] = len(kept)
            kept.append(item)
    return kept


def _item_key(text: str) -> str:
    return " ".join(text.casefold().split())


_UNIQUE = AfterValidator(_unique)


class Corrections(BaseModel):
    """The terms a CSM corrects (`PATCH /contracts/{id}` `{"extracted": {...}}`), each optional.

    Validated like a model's values: dates in ISO or written forms, amounts as numbers or
    "$120,000", durations as numbers or "90 days"; null clears a term. Unknown names are
    refused. Pass `model_dump(exclude_unset=True)` to `apply_corrections`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    parties: Annotated[list[Party], BeforeValidator(_items(Party)), Field(max_length=50), _UNIQUE] | None = None
    effective_date: IsoDate | None = None
    end_date: IsoDate | None = None
    renewal_date: IsoDate | None = None
    auto_renew: Boolean | None = None
    notice_period_days: Days | None = None
    term_months: Months | None = None
    total_value: Amount | None = None
    arr: Amount | None = None
    currency: Currency | None = None
    payment_terms: Annotated[str, BeforeValidator(_text(500))] | None = None
    entitlements: (
        Annotated[list[Entitlement], BeforeValidator(_items(Entitlement)), Field(max_length=200), _UNIQUE] | None
    ) = None
    stakeholders: (
        Annotated[list[Stakeholder], BeforeValidator(_items(Stakeholder)), Field(max_length=100), _UNIQUE] | None
    ) = None
    governing_law: Annotated[str, BeforeValidator(_text(200))] | None = None
    termination_clauses: Annotated[list[Clause], BeforeValidator(_clauses), Field(max_length=50), _UNIQUE] | None = None


def _value(field: str, raw: object, *, lenient: bool) -> Any:
    """One term's value as stored (JSON), or ValueError; None when the value is blank."""
    if raw is None or (isinstance(raw, str | list | Mapping) and not raw):
        return None
    if isinstance(raw, str) and not raw.strip():
        return None
    try:
        parsed = Corrections.model_validate({field: raw}, context={"lenient": lenient})
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"] if not str(part).startswith("function-"))
        raise ValueError(f"{where or field}: {str(first['msg']).removeprefix('Value error, ')}") from None
    return parsed.model_dump(mode="json")[field]


# -- the schema the model fills -----------------------------------------------------------------


def tool_input_schema() -> dict[str, Any]:
    """The input schema of the forced tool `record_contract_terms`, inlined (no $ref)."""
    text = {"type": "string"}
    date_ = {"type": "string", "description": "YYYY-MM-DD"}
    money = {"type": "number", "description": "A plain number, without currency symbol or separators."}
    terms: dict[str, dict[str, Any]] = {
        "parties": {
            "type": "array",
            "description": "The parties that sign the contract.",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "Legal name as written."},
                    "role": {"type": "string", "description": "e.g. customer, vendor, reseller."},
                },
                "required": ["name"],
            },
        },
        "effective_date": {**date_, "description": "The date the contract takes effect, YYYY-MM-DD."},
        "end_date": {**date_, "description": "The date the current term ends, YYYY-MM-DD."},
        "renewal_date": {**date_, "description": "The date the contract renews or is up for renewal, YYYY-MM-DD."},
        "auto_renew": {"type": "boolean", "description": "Whether the contract renews automatically."},
        "notice_period_days": {
            "type": "integer",
            "description": "Days of notice needed to terminate or not renew (calendar days).",
        },
        "term_months": {"type": "integer", "description": "The length of the initial term in months."},
        "total_value": {**money, "description": "The total contract value over the term: a plain number."},
        "arr": {**money, "description": "The annual recurring revenue, only if the contract states it."},
        "currency": {"type": "string", "description": "ISO 4217 code of the amounts, e.g. USD."},
        "payment_terms": {**text, "description": "e.g. Net 30, annually in advance."},
        "entitlements": {
            "type": "array",
            "description": "What the customer buys: products, seats, usage.",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "quantity": {"type": "number"},
                    "unit": {"type": "string", "description": "e.g. seats, users, GB."},
                    "unit_price": money,
                },
                "required": ["name"],
            },
        },
        "stakeholders": {
            "type": "array",
            "description": "People named in the contract: signatories, contacts.",
            "items": {
                "type": "object",
                "properties": {"name": text, "title": text, "email": text},
                "required": ["name"],
            },
        },
        "governing_law": {**text, "description": "The governing law, e.g. State of New York."},
        "termination_clauses": {
            "type": "array",
            "description": "Each termination right, in a sentence.",
            "items": text,
        },
    }
    schema = {
        "type": "object",
        "properties": {
            **terms,
            "confidence": {
                "type": "object",
                "description": "For each term given: how sure you are it is right, from 0 to 1.",
                "properties": {field: {"type": "number"} for field in FIELDS},
            },
            "evidence": {
                "type": "object",
                "description": "For each term given: a verbatim quote from the text that states it, and its page.",
                "properties": {
                    field: {
                        "type": "object",
                        "properties": {
                            "quote": {"type": "string", "description": "Copied exactly from the text, one sentence."},
                            "page": {"type": "integer", "description": "The page number the quote is on."},
                        },
                        "required": ["quote", "page"],
                    }
                    for field in FIELDS
                },
            },
        },
        "required": ["confidence", "evidence"],
    }
    # The same small dicts appear in several places above: the caller gets its own copy.
    return copy.deepcopy(schema)


# -- finding a quote ----------------------------------------------------------------------------

_PLAIN = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4`", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
        **dict.fromkeys("\u00ad\u200b\u200c\u200d\u2060\ufeff", None),
    }
)


def _loose(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).translate(_PLAIN).casefold().split())


def _looser(loose: str) -> str:
    return loose.replace(" ", "").replace("-", "")


class _Pages:
    """A document's pages, normalised once, to find where a quote is."""

    def __init__(self, document: Document) -> None:
        texts: dict[int, list[str]] = {}
        for page in document.pages:
            # A page split into pieces (by `chunks`) is whole again: its pieces are contiguous.
            texts.setdefault(page.number, []).append(page.text)
        self.numbers = sorted(texts)
        self.loose = {n: _loose("".join(texts[n])) for n in self.numbers}
        self.looser = {n: _looser(self.loose[n]) for n in self.numbers}

    def find(self, quote: str, page: int | None) -> int | None:
        """The page the quote is on: the page named if it is there, else the first it is on."""
        loose = _loose(quote)
        if not MIN_QUOTE_CHARS <= len(loose) <= MAX_QUOTE_CHARS:
            return None
        looser = _looser(loose)
        order = ([page] if page in self.loose else []) + self.numbers
        for number in order:
            if loose in self.loose[number] or looser in self.looser[number]:
                return number
        for number in order:
            following = self._next(number)
            if following is not None:
                if loose in f"{self.loose[number]} {self.loose[following]}":
                    return number
                if looser in self.looser[number] + self.looser[following]:
                    return number
        return None

    def _next(self, number: int) -> int | None:
        index = self.numbers.index(number) + 1
        return self.numbers[index] if index < len(self.numbers) else None


def _citations(value: object) -> list[tuple[str, int | None]]:
    """The (quote, page) pairs a model gave for one term, in any of the shapes models use."""
    items = value if isinstance(value, list) else [value]
    cited: list[tuple[str, int | None]] = []
    for item in items:
        if isinstance(item, str):
            cited.append((item, None))
        elif isinstance(item, Mapping) and isinstance(item.get("quote"), str):
            cited.append((item["quote"], _page_number(item.get("page"))))
    return cited


def _page_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and (match := re.fullmatch(r"\s*(?:p(?:age|\.|g\.?)?\s*)?(\d+)\s*", value.casefold())):
        return int(match[1])
    return None


def _evidence_map(value: object) -> dict[str, object]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list) and all(isinstance(i, Mapping) and isinstance(i.get("field"), str) for i in value):
        grouped: dict[str, list[object]] = {}
        for item in value:
            grouped.setdefault(item["field"], []).append(item)
        return dict(grouped)
    raise TermsError("evidence is not an object of quotes and pages keyed by term")


def _confidence_map(value: object) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TermsError("confidence is not an object of numbers keyed by term")
    confidences: dict[str, float] = {}
    for field, raw in value.items():
        number = _confidence(raw)
        if number is not None:
            confidences[str(field)] = number
    return confidences


def _confidence(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            return None
    if not isinstance(raw, int | float) or not math.isfinite(raw):
        return None
    return min(1.0, max(0.0, float(raw)))


# -- the stored `extracted` ---------------------------------------------------------------------


def empty() -> dict[str, Any]:
    """An `extracted` with no term known: every key present."""
    return {
        **dict.fromkeys(FIELDS),
        "confidence": {},
        "evidence": {},
        "dropped": [],
        "derived": [],
        "corrected": [],
    }


# The JSON types a term may come as, however lenient the reading (a date may be written out,
# an amount may be "$120,000"): an answer whose every term is of another type broke the schema.
_SHAPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(LIST_FIELDS, (list, str, Mapping)),
    **dict.fromkeys(
        ("effective_date", "end_date", "renewal_date", "currency", "payment_terms", "governing_law"), (str,)
    ),
    **dict.fromkeys(("notice_period_days", "term_months", "total_value", "arr"), (int, float, str)),
    "auto_renew": (bool, str),
}


def verify(raw: object, document: Document) -> dict[str, Any]:
    """The `extracted` to store from a model's answer: values normalised, kept only with evidence.

    Raises `TermsError` when the answer is not an object, names no term, has evidence or
    confidence not keyed by term, or gives every term as a type the schema does not allow.
    """
    if not isinstance(raw, Mapping):
        raise TermsError(f"the answer is {type(raw).__name__}, not an object of terms")
    if raw and not set(raw) & {*FIELDS, "confidence", "evidence"}:
        raise TermsError("the answer names none of the terms")
    evidence = _evidence_map(raw.get("evidence"))
    confidence = _confidence_map(raw.get("confidence"))
    given = [field for field in FIELDS if raw.get(field) is not None]
    if given and not any(isinstance(raw[field], _SHAPES[field]) for field in given):
        raise TermsError(f"no term in the answer has the type the schema gives it ({', '.join(given)})")
    pages = _Pages(document)
    result = empty()
    for field in FIELDS:
        try:
            value = _value(field, raw.get(field), lenient=True)
        except ValueError:
            _drop(result, field, "invalid")
            continue
        if value is None:
            continue
        cite = _find(pages, evidence.get(field))
        if cite is None:
            _drop(result, field, "evidence_not_found")
            continue
        result[field] = value
        result["evidence"][field] = cite
        if field in confidence:
            result["confidence"][field] = confidence[field]
    _currency_from_amounts(result, raw)
    _derive_arr(result)
    return result


def _drop(result: dict[str, Any], field: str, reason: DropReason) -> None:
    result["dropped"].append({"field": field, "reason": reason})


def _currency_from_amounts(result: dict[str, Any], raw: Mapping[str, Any]) -> None:
    """The currency an amount's text names ("$120,000": USD), when the answer gives none."""
    if result["currency"] is not None:
        return
    for field in ("total_value", "arr"):
        written = raw.get(field)
        if result[field] is not None and isinstance(written, str):
            named = _money(written)[1]
            if named:
                _set_derived(result, "currency", named, source=field)
                return


def _find(pages: _Pages, cited: object) -> dict[str, Any] | None:
    for quote, page in _citations(cited):
        number = pages.find(quote, page)
        if number is not None:
            return {"quote": " ".join(quote.split()), "page": number}
    return None


def _set_derived(result: dict[str, Any], field: str, value: object, *, source: str) -> None:
    result[field] = value
    if source in result["evidence"]:
        result["evidence"][field] = dict(result["evidence"][source])
    else:
        result["evidence"].pop(field, None)
    if source in result["confidence"]:
        result["confidence"][field] = result["confidence"][source]
    else:
        result["confidence"].pop(field, None)
    if field not in result["derived"]:
        result["derived"].append(field)


def _derive_arr(result: dict[str, Any]) -> None:
    """arr = total_value * 12 / term_months when the contract does not state it.

    A derived arr follows its inputs: it is recomputed when they change, removed when they go,
    and its confidence is no higher than theirs, its evidence that of the total value.
    """
    if "arr" in result["corrected"] or (result["arr"] is not None and "arr" not in result["derived"]):
        return
    total, months = result["total_value"], result["term_months"]
    if total is None or not months:
        if "arr" in result["derived"]:
            result["arr"] = None
            result["evidence"].pop("arr", None)
            result["confidence"].pop("arr", None)
            result["derived"].remove("arr")
        return
    _set_derived(
        result, "arr", _amount_number(round(Decimal(str(total)) * 12 / Decimal(months), 2)), source="total_value"
    )
    if "arr" in result["confidence"] and "term_months" in result["confidence"]:
        result["confidence"]["arr"] = min(result["confidence"]["arr"], result["confidence"]["term_months"])


# -- long contracts -----------------------------------------------------------------------------


def chunks(document: Document, max_chars: int = 60_000) -> list[Document]:
    """The document in runs of whole pages of at most `max_chars` characters each.

    A page longer than that is cut on paragraph (else line, else word) boundaries into pieces
    that keep its number; no text is lost, so a term on page 30 is in some chunk.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    pieces: list[Page] = []
    for page in document.pages:
        if len(page.text) <= max_chars:
            pieces.append(page)
        else:
            pieces.extend(Page(page.number, part) for part in _cut(page.text, max_chars))
    runs: list[Document] = []
    run: list[Page] = []
    size = 0
    for piece in pieces:
        if run and size + len(piece.text) > max_chars:
            runs.append(Document(document.kind, tuple(run)))
            run, size = [], 0
        run.append(piece)
        size += len(piece.text)
    if run:
        runs.append(Document(document.kind, tuple(run)))
    return runs


def _cut(text: str, max_chars: int) -> list[str]:
    """`text` in consecutive pieces of at most `max_chars`, cut where a paragraph, line or word ends."""
    pieces: list[str] = []
    start = 0
    while len(text) - start > max_chars:
        end = start + max_chars
        cut = -1
        for boundary in ("\n\n", "\n", " "):
            at = text.rfind(boundary, start + 1, end)
            if at != -1:
                cut = at + len(boundary)
                break
        if cut <= start:
            cut = end
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def merge(partials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The verified extractions of a contract's chunks as one.

    A single value: the most confident (a missing confidence counts below 0), a tie going to the
    earliest page. A list: the items of every chunk, each once (names compared case- and
    whitespace-insensitively), its evidence and confidence from the most confident chunk.
    Values a chunk derived count only where no chunk states one; arr is derived again from the
    merged total value and term.
    """
    parts = [_copy(p) for p in partials]
    result = empty()
    for field in FIELDS:
        candidates = _candidates(parts, field)
        if not candidates:
            continue
        _, best = max(candidates, key=lambda c: _rank(c[1], field, c[0]))
        if field in LIST_FIELDS:
            result[field] = _united(p[field] for _, p in candidates)
        else:
            result[field] = copy.deepcopy(best[field])
        for book in ("evidence", "confidence"):
            if field in best[book]:
                result[book][field] = copy.deepcopy(best[book][field])
        for book in ("derived", "corrected"):
            if field in best[book]:
                result[book].append(field)
    for part in parts:
        for drop in part["dropped"]:
            if drop not in result["dropped"]:
                result["dropped"].append(dict(drop))
    _derive_arr(result)
    return result


def _candidates(parts: list[dict[str, Any]], field: str) -> list[tuple[int, dict[str, Any]]]:
    """The chunks that give `field`, with their index: those that state it, else those that derived it."""
    stated = [(i, p) for i, p in enumerate(parts) if p[field] is not None and field not in p["derived"]]
    if stated or field == "arr":  # arr is derived again from the merged values
        return stated
    return [(i, p) for i, p in enumerate(parts) if p[field] is not None]


def _rank(part: Mapping[str, Any], field: str, index: int) -> tuple[bool, float, float, int]:
    confidence = part["confidence"].get(field, -1.0)
    page = (part["evidence"].get(field) or {}).get("page")
    return (field in part["corrected"], confidence, -(page if isinstance(page, int) else math.inf), -index)


def _united(lists: Iterable[list[Any]]) -> list[Any]:
    """The items of several lists, each once; a repeat fills what the first left empty."""
    united: list[Any] = []
    at: dict[str, int] = {}
    for items in lists:
        for item in items:
            key = _item_key(item if isinstance(item, str) else str(item.get("name", "")))
            if key not in at:
                at[key] = len(united)
                united.append(copy.deepcopy(item))
            elif isinstance(item, Mapping):
                first = united[at[key]]
                for name, value in item.items():
                    if first.get(name) is None and value is not None:
                        first[name] = copy.deepcopy(value)
    return united


def _copy(extracted: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy of a stored `extracted` with every key present (older records lack some)."""
    result = empty()
    if not extracted:
        return result
    for field in FIELDS:
        result[field] = copy.deepcopy(extracted.get(field))
    for book in ("confidence", "evidence"):
        if isinstance(extracted.get(book), Mapping):
            result[book] = {k: copy.deepcopy(v) for k, v in extracted[book].items() if k in FIELDS}
    if isinstance(extracted.get("dropped"), list):
        result["dropped"] = [dict(d) for d in extracted["dropped"] if isinstance(d, Mapping)]
    for book in ("derived", "corrected"):
        if isinstance(extracted.get(book), list):
            result[book] = [f for f in extracted[book] if f in FIELDS]
    return result


# -- the CSM's corrections ----------------------------------------------------------------------


def apply_corrections(extracted: Mapping[str, Any] | None, corrections: Mapping[str, Any]) -> dict[str, Any]:
    """`extracted` with the CSM's corrections: confidence 1, no evidence, listed in `corrected`.

    A correction to null clears the term (still recorded as corrected). Raises ValueError for
    an unknown term name or a value that cannot be read (the message names the term).
    """
    unknown = sorted(set(corrections) - set(FIELDS))
    if unknown:
        raise ValueError(f"not a contract term: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for field, raw in corrections.items():
        values[field] = _value(field, raw, lenient=False)
    result = _copy(extracted)
    for field in FIELDS:
        if field in values:
            _set_corrected(result, field, values[field], confidence=1.0, evidence=None)
    _derive_arr(result)
    return result


def keep_corrections(previous: Mapping[str, Any] | None, fresh: Mapping[str, Any]) -> dict[str, Any]:
    """A re-parse's `extracted` with every term the CSM corrected before kept as corrected."""
    result = _copy(fresh)
    before = _copy(previous)
    for field in FIELDS:
        if field in before["corrected"]:
            _set_corrected(
                result,
                field,
                before[field],
                confidence=before["confidence"].get(field),
                evidence=before["evidence"].get(field),
            )
    _derive_arr(result)
    return result


def _set_corrected(
    result: dict[str, Any], field: str, value: Any, *, confidence: float | None, evidence: object
) -> None:
    result[field] = copy.deepcopy(value)
    if value is not None and confidence is not None:
        result["confidence"][field] = confidence
    else:
        result["confidence"].pop(field, None)
    if value is not None and evidence is not None:
        result["evidence"][field] = copy.deepcopy(evidence)
    else:
        result["evidence"].pop(field, None)
    # What the model proposed for this term no longer matters: the CSM's value stands.
    result["dropped"] = [d for d in result["dropped"] if d.get("field") != field]
    if field in result["derived"]:
        result["derived"].remove(field)
    if field not in result["corrected"]:
        result["corrected"].append(field)
    result["corrected"].sort(key=FIELDS.index)
