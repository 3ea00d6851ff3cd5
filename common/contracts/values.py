"""One contract term's value, read the way people write it: dates, money, durations, currency.

The same rules read a model's answer and a CSM's correction (`schema.Corrections`): a date in
ISO or a written form ("1st January 2026"; a numeric date only when it cannot be misread),
an amount with its currency ("€1.2M"), a duration in words or digits ("thirty (30) days"),
yes and no as people say them. Each rule is a function that returns the value as stored or
raises ValueError with a sentence that says what was expected; the `Annotated` types below
attach them to pydantic fields, with the JSON type a model is asked to give.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

from common.currencies import is_currency

# -- dates ----------------------------------------------------------------------------------------

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


# -- money ----------------------------------------------------------------------------------------

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


def decimal_number(digits: str) -> Decimal:
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


def money(value: object) -> tuple[int | float, str | None]:
    """An amount ≥ 0 and the currency its text names, if any: "€1.2M" is (1200000, "EUR")."""
    if isinstance(value, bool):
        raise ValueError("must be an amount such as 120000")
    if isinstance(value, int | float):
        return amount_number(Decimal(str(value))), None
    if not isinstance(value, str):
        raise ValueError("must be an amount such as 120000")
    text = " ".join(unicodedata.normalize("NFKC", value).casefold().replace("\u2019", "'").split())
    match = _MONEY.fullmatch(text)
    if match is None:
        raise ValueError("must be an amount such as 120000 or $120,000")
    named = [_currency(part) for part in (match["before"], match["after"]) if part]
    if len(set(named)) > 1:
        raise ValueError("names two currencies")
    amount = decimal_number(match["number"]) * _SCALES.get(match["scale"] or "", 1)
    return amount_number(amount), (named[0] if named else None)


def amount_number(amount: Decimal) -> int | float:
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        raise ValueError("must be an amount between 0 and 10^15")
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _amount(value: object) -> int | float:
    return money(value)[0]


# -- durations, yes or no, text -------------------------------------------------------------------

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


def plain_text(max_length: int) -> Callable[[object], str]:
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


# -- the types of the terms' fields ---------------------------------------------------------------
#
# Each reads what people write; its JSON schema asks a model for the one plain form (an amount
# as a number, a date as YYYY-MM-DD), where the Python type alone would say less or too much.

Name = Annotated[str, BeforeValidator(plain_text(200))]
ShortText = Annotated[str, BeforeValidator(plain_text(200))]
IsoDate = Annotated[str, BeforeValidator(_iso_date), WithJsonSchema({"type": "string", "description": "YYYY-MM-DD"})]
Amount = Annotated[
    int | float,
    BeforeValidator(_amount),
    WithJsonSchema({"type": "number", "description": "A plain number, without currency symbol or separators."}),
]
Days = Annotated[int, BeforeValidator(_days)]
Months = Annotated[int, BeforeValidator(_months)]
Currency = Annotated[str, BeforeValidator(_currency)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
