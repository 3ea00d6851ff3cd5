"""List cursors (`common/cursors.py`), in process: sealed, so they reveal nothing, and good only for
the list they came from; anything else given as a cursor is the same 400."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from common import cursors
from common.errors import ApiError, Code
from tests.conftest import Instance

pytestmark = pytest.mark.fast  # in-process, no emulator: `make test-fast` runs it

QUERY = "alice/customers/name"
VALUES = ["acme corp", 120_000, None, 2.5, True, datetime(2027, 3, 1, 9, 30, tzinfo=UTC)]


@pytest.fixture(autouse=True)
def _demo_project(fresh_instance: Instance) -> None:
    fresh_instance(GOOGLE_CLOUD_PROJECT="demo-cscx", CSCX_CURSOR_KEY=None)  # a demo project's fixed key


def assert_bad_cursor(cursor: str, query_id: str = QUERY, n_values: int = len(VALUES)) -> None:
    with pytest.raises(ApiError) as refused:
        cursors.decode(cursor, query_id, n_values)
    assert refused.value.code is Code.INVALID_ARGUMENT
    assert refused.value.details == [{"field": "cursor", "message": "not a cursor from this list"}]


def test_a_cursor_gives_back_the_values_and_id_it_was_made_from() -> None:
    cursor = cursors.encode(QUERY, VALUES, "doc123")
    assert cursors.decode(cursor, QUERY, len(VALUES)) == (VALUES, "doc123")


def test_times_come_back_as_the_same_instant() -> None:
    paris = datetime(2027, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    [back], _ = cursors.decode(cursors.encode(QUERY, [paris], "d"), QUERY, 1)
    assert back == paris


def test_a_cursor_reveals_none_of_its_values_and_differs_each_time() -> None:
    first, second = (cursors.encode(QUERY, ["acme corp"], "doc123") for _ in range(2))
    assert first != second
    raw = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4))
    assert b"acme" not in raw
    assert b"doc123" not in raw
    assert "=" not in first  # URL-safe, unpadded


def test_a_cursor_from_another_list_is_refused() -> None:
    cursor = cursors.encode(QUERY, VALUES, "doc123")
    assert_bad_cursor(cursor, query_id="bob/customers/name")  # another user
    assert_bad_cursor(cursor, query_id="alice/customers/-arr")  # another order
    assert_bad_cursor(cursor, query_id="alice/tasks/name")  # another collection


def test_a_cursor_sealed_under_another_key_is_refused(fresh_instance: Instance) -> None:
    cursor = cursors.encode(QUERY, VALUES, "doc123")
    fresh_instance(CSCX_CURSOR_KEY="another key, long enough")
    assert_bad_cursor(cursor)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda c: c[:20] + ("A" if c[20] != "A" else "B") + c[21:], id="one character changed"),
        pytest.param(lambda c: c[:10], id="cut short"),
        pytest.param(lambda c: c + "AAAA", id="lengthened"),
        pytest.param(lambda c: "", id="empty"),
        pytest.param(lambda c: "not a cursor!", id="not base64"),
        pytest.param(lambda c: "é" * 40, id="not ASCII"),
    ],
)
def test_an_edited_or_made_up_cursor_is_refused(edit: object) -> None:
    cursor = cursors.encode(QUERY, VALUES, "doc123")
    assert callable(edit)
    assert_bad_cursor(edit(cursor))


def test_a_cursor_with_another_number_of_values_is_refused() -> None:
    assert_bad_cursor(cursors.encode(QUERY, VALUES[:2], "doc123"))


def test_only_values_firestore_orders_by_can_be_sealed() -> None:
    with pytest.raises(TypeError):
        cursors.encode(QUERY, [object()], "doc123")
