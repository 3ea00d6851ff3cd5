"""List cursors: where the next page of a list starts, sealed so that it reveals nothing.

A cursor is the last item's sort values and document id, encrypted and authenticated with
AES-GCM (a key derived from CSCX_CURSOR_KEY), the query it belongs to (tenant, collection,
filters, order: `query_id`) as its associated data: its bytes reveal nothing, and a cursor
from anywhere else, or edited, is a 400.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from datetime import UTC, datetime
from typing import Any

from common.errors import ApiError, Code
from common.settings import get_settings


def _bad_cursor() -> ApiError:
    return ApiError(
        Code.INVALID_ARGUMENT,
        "The cursor is not valid for this list; start again without it.",
        [{"field": "cursor", "message": "not a cursor from this list"}],
    )


@functools.cache
def _cursor_cipher(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(hashlib.sha256(b"cscx/list-cursor/v1\0" + key).digest())


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
    nonce = os.urandom(12)
    sealed = _cursor_cipher(get_settings().cursor_key).encrypt(nonce, plain, query_id.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def decode(cursor: str, query_id: str, n_values: int) -> tuple[list[Any], str]:
    """The sort values and document id a cursor of the list `query_id` holds, else a 400."""
    from cryptography.exceptions import InvalidTag

    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        if len(raw) < 12 + 16:
            raise ValueError("too short")
        plain = _cursor_cipher(get_settings().cursor_key).decrypt(raw[:12], raw[12:], query_id.encode())
        payload = json.loads(plain)
    except (ValueError, UnicodeError, RecursionError, InvalidTag):
        raise _bad_cursor() from None
    values, doc_id = payload.get("v"), payload.get("d")
    if not isinstance(values, list) or len(values) != n_values or not isinstance(doc_id, str):
        raise _bad_cursor()  # sealed by us, so only a change of code gets here
    return [_decode_value(v) for v in values], doc_id
