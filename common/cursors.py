"""List cursors: where the next page of a list starts, sealed so that it reveals nothing.

A cursor is the last item's sort values and document id, encrypted and authenticated with
AES-GCM (a key derived from CSCX_CURSOR_KEY), the query it belongs to (tenant, collection,
filters, order: `query_id`) as its associated data: its bytes reveal nothing, and a cursor
from anywhere else, or edited, is a 400.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

from common import sealing
from common.errors import ApiError, Code
from common.settings import get_settings


def _bad_cursor() -> ApiError:
    return ApiError(
        Code.INVALID_ARGUMENT,
        "The cursor is not valid for this list; start again without it.",
        [{"field": "cursor", "message": "not a cursor from this list"}],
    )


@functools.cache
def _cursor_key(secret: bytes) -> bytes:
    return sealing.derive_key(secret, "cscx/list-cursor/v1")


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.astimezone(UTC).isoformat()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot order by a {type(value).__name__}")


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        return datetime.fromisoformat(value["t"])
    return value


def encode(query_id: str, values: list[Any], doc_id: str) -> str:
    """The cursor after the item with sort `values` and `doc_id`, in the list `query_id` names."""
    plain = json.dumps({"v": [_encode_value(v) for v in values], "d": doc_id}, separators=(",", ":")).encode()
    return sealing.b64encode(sealing.seal(_cursor_key(get_settings().cursor_key), plain, query_id.encode()))


def decode(cursor: str, query_id: str, n_values: int) -> tuple[list[Any], str]:
    """The sort values and document id a cursor of the list `query_id` holds, else a 400."""
    try:
        sealed = sealing.b64decode(cursor)
        plain = sealing.unseal(_cursor_key(get_settings().cursor_key), sealed, query_id.encode())
        payload = json.loads(plain)
    except (ValueError, RecursionError):  # sealing.UnsealableError and UnicodeError are ValueErrors
        raise _bad_cursor() from None
    values, doc_id = payload.get("v"), payload.get("d")
    if not isinstance(values, list) or len(values) != n_values or not isinstance(doc_id, str):
        raise _bad_cursor()  # sealed by us, so only a change of code gets here
    return [_decode_value(v) for v in values], doc_id
