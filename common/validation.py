"""Parsing and validating values: JSON bodies and decoded values against pydantic models.

This module imports nothing else of `common/`, so models, the domain and the HTTP edge can all
use it. Its one error, `InvalidInputError`, names the bad fields; the HTTP edge turns it into the
contract's 400 INVALID_ARGUMENT (`common.http.router`), and the agent's tool runner into an
error the model sees.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

# Ids the server hands out (Firestore auto ids, Firebase uids); Firestore reserves __x__ ids.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"
MAX_DETAILS = 20  # an error answer lists at most this many bad fields, and says how many more
# Values (object members and list items, nested ones too) one JSON body may hold: the largest
# valid body, a customer with every list full, holds about 700.
MAX_VALUES = 5_000

M = TypeVar("M", bound=BaseModel)


class InvalidInputError(ValueError):
    """A value that does not validate: a sentence, and each bad field (at most MAX_DETAILS)."""

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


def parse_json(model: type[M], body: bytes) -> M:
    """Validate a JSON body against `model`, or raise one `InvalidInputError` naming the bad fields."""
    check_value_count(model, body)
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        decoded = None  # the validation below says what is wrong with it
    return parse_decoded(model, body, decoded)


def check_value_count(model: type[BaseModel], body: bytes) -> None:
    """Refuse a JSON body holding more values than `model` takes, before it is decoded.

    The values are counted from the bytes at the speed of `bytes.count`: a body of a hundred
    thousand tiny values is refused for the cost of reading it, not of building each value.
    """
    limit = int(getattr(model, "max_values", MAX_VALUES))  # a model whose values are not each checked may hold more
    if _holds_more_values_than(body, limit):
        raise InvalidInputError(f"The request holds more than {limit} values; no object takes that many.")


def parse_decoded(model: type[M], body: bytes, decoded: Any) -> M:
    """`parse_json` with the body decoded already (None: it does not decode), and its values
    counted before it was (`check_value_count`).

    What the body can make the validation do is bounded first: one with more unknown top-level
    fields than an answer lists is refused by name, so thousands of bad keys cost a parse, not
    a validation error each.
    """
    if isinstance(decoded, dict) and model.model_config.get("extra") == "forbid":
        known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
        unknown = [name for name in decoded if name not in known]
        if len(unknown) > MAX_DETAILS:  # fewer are named by the validation, with every other bad field
            details = [
                _detail(model, {"loc": (name,), "msg": "", "type": "extra_forbidden"})
                for name in unknown[: MAX_DETAILS + 1]
            ]
            raise _invalid(details, len(unknown))
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise _invalid(
            [_detail(model, e) for e in error.errors(include_url=False)[: MAX_DETAILS + 1]], error.error_count()
        ) from None


def parse_value(model: type[M], value: Any) -> M:
    """Validate an already-decoded value (an agent tool's input, say) like a JSON body."""
    return parse_json(model, json.dumps(value).encode())


def _holds_more_values_than(body: bytes, limit: int) -> bool:
    """Whether a JSON text holds more than `limit` values (object members and list items, nested
    ones too; a key given twice counts twice), judged from its bytes without decoding it: exactly
    for valid JSON, and for invalid JSON either answer does, as it is refused either way."""
    # Each value but the first of a container follows a comma, and each container opens with a
    # bracket: a text with no more of those than the limit, in strings or not, holds no more values.
    if len(body) - len(body.translate(None, b",[{")) <= limit:
        return False
    # Each string is a key, whose member is a value, or a value: there are at least half as many
    # values as strings, not counting one string standing alone. An escaped quote ends none.
    strings = (body.count(b'"') - body.count(b'\\"')) // 2
    if strings > 2 * limit + 1:
        return True
    return _values_in(body) > limit


def _values_in(body: bytes) -> int:
    """The values of a valid JSON text, counted from its structure with each string made `0`: a
    container holds one value more than it has commas, unless it is empty."""
    if b"\\" in body:  # escapes occur only in strings; without them, each quote opens or closes one
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = b"0".join(body.split(b'"')[::2]).translate(None, b" \t\r\n")
    containers = structure.count(b"[") + structure.count(b"{") - structure.count(b"[]") - structure.count(b"{}")
    return structure.count(b",") + containers


def _invalid(details: list[dict[str, str]], count: int | None = None) -> InvalidInputError:
    count = len(details) if count is None else count
    message = "The request has invalid fields."
    if count > MAX_DETAILS:
        message = f"The request has {count} invalid fields; the first {MAX_DETAILS} are listed."
    return InvalidInputError(message, details[:MAX_DETAILS])


def _detail(model: type[BaseModel], error: Any) -> dict[str, str]:
    location = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        top = str(error["loc"][0]) if error["loc"] else ""
        server_owned: Callable[[], frozenset[str]] | None = getattr(model, "server_owned", None)
        message = (
            "is set by the server and cannot be written"
            if server_owned is not None and top in server_owned()
            else "is not a field of this object"
        )
    if ": " in message and not location.count("."):
        # A model-level rule that names its field: "name: may not be null", "messages.3: ..."
        named, _, rest = message.partition(": ")
        if re.fullmatch(r"\w+(\.\w+)*", named):
            location, message = ".".join(p for p in (location, named) if p), rest
    return {"field": location or "body", "message": message}


# -- to JSON ---------------------------------------------------------------------------------


def json_default(value: Any) -> Any:
    """What `json.dumps` writes for the values answers hold besides JSON's own: dates and times."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
