"""The lease helper (`common/lease.py`) through the repository against the Firestore emulator: one
holder at a time, a lapsed lease taken over, renewal that keeps it, and letting go only by its
holder, each with the holder's changes in the same write."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.collections import Kind
from common.lease import Lease, held
from common.store import Repository
from tests.conftest import Caller

THINGS = Kind("thing", "lease_tests")


@pytest.fixture
def thing(alice: Caller, repo_for: Any) -> str:
    repo: Repository = repo_for(alice.uid)
    return str(repo.create(THINGS, {"state": "idle"})["id"])


def lease(user: Caller, doc_id: str, seconds: float = 30) -> Lease:
    return Lease(Repository(user.uid), THINGS, doc_id, seconds=seconds)


def stored(user: Caller, doc_id: str) -> dict[str, Any]:
    return Repository(user.uid).get(THINGS, doc_id)


def test_one_holder_at_a_time_and_its_changes_written_with_the_lease(alice: Caller, thing: str) -> None:
    first, second = lease(alice, thing), lease(alice, thing)

    taken = first.take(lambda current: {"state": "busy", "was": current["state"]})

    assert taken is not None
    assert (taken["state"], taken["was"], taken["lease"]["holder"]) == ("busy", "idle", first.holder)
    assert held(stored(alice, thing))
    before = stored(alice, thing)["version"]
    assert second.take(lambda _: {"state": "mine"}) is None
    assert second.release({"state": "mine"}) is None
    assert (stored(alice, thing)["state"], stored(alice, thing)["version"]) == ("busy", before)  # nothing written


def test_a_document_in_no_state_to_be_taken_is_not(alice: Caller, thing: str) -> None:
    assert lease(alice, thing).take(lambda current: None if current["state"] == "idle" else {}) is None
    assert not held(stored(alice, thing))


def test_a_lapsed_lease_is_taken_over_and_its_old_holder_has_lost_it(alice: Caller, thing: str) -> None:
    dead, alive = lease(alice, thing, seconds=0.5), lease(alice, thing)
    assert dead.take() is not None
    time.sleep(0.6)
    assert not held(stored(alice, thing))

    assert alive.take(lambda _: {"state": "taken over"}) is not None

    assert dead.renew() is False
    assert dead.lost
    assert dead.release({"state": "stale"}) is None
    assert stored(alice, thing)["state"] == "taken over"


def test_letting_go_writes_the_outcome_and_frees_the_document(alice: Caller, thing: str) -> None:
    holder = lease(alice, thing)
    holder.take()

    released = holder.release({"state": "done"})

    assert released is not None
    assert (released["state"], released["lease"]) == ("done", None)
    assert not held(stored(alice, thing))
    assert holder.release({"state": "again"}) is None  # let go already
    assert lease(alice, thing).take() is not None


def test_a_kept_lease_outlives_its_length_and_frees_the_document_when_let_go(alice: Caller, thing: str) -> None:
    holder, other = lease(alice, thing, seconds=0.6), lease(alice, thing)
    holder.take()

    with holder.kept():
        time.sleep(1.5)  # two and a half lengths: only renewals hold it
        assert held(stored(alice, thing))
        assert other.take() is None
        holder.release({"state": "done"})

    assert not holder.lost
    assert other.take() is not None


def test_a_kept_lease_whose_document_went_is_lost(alice: Caller, thing: str) -> None:
    holder = lease(alice, thing, seconds=0.6)
    holder.take()

    with holder.kept():
        Repository(alice.uid).delete(THINGS, thing)
        time.sleep(0.5)

    assert holder.lost


def test_held_reads_a_lease_as_stored() -> None:
    now = datetime.now(UTC)
    assert held({"lease": {"holder": "h", "until": now + timedelta(seconds=1)}}, now=now)
    assert not held({"lease": {"holder": "h", "until": now}}, now=now)
    assert not held({"lease": None})
    assert not held({})
