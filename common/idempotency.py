"""`Idempotency-Key` (DESIGN §4): a retried POST that creates or decides has its effect once.

The first request with a key claims it (a record per user and key, `in_flight` with a short
lease). Its effect's commit carries the record along (`store.Rider`): the effect and
`committed` (naming what it wrote) are stored together, or neither. When the answer is ready,
the record keeps it (`completed`: status, ETag/Location, body) for 24 hours. A repeat of the same
request gets that answer again with `Idempotent-Replayed: true`; one that finds the effect
committed but no answer (the first request failed after its commit) gets the written object;
the same key with another request is a 422; while the first is in flight, a 409 with
`Retry-After`. A refusal before any effect (validation) is not kept, so a corrected retry with
the same key goes through. Keys are per user: the same key from two users never meets.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from common.errors import ApiError, Code
from common.log import get_logger
from common.store import Kind, Repository, Rider

logger = get_logger(__name__)

KEYS = Kind("idempotency key", "idempotency_keys")
HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEPT_FOR = timedelta(hours=24)
IN_FLIGHT_LEASE = timedelta(seconds=60)  # a first request that died frees its key after this
KEPT_HEADERS = ("ETag", "Location")
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII


@dataclass(frozen=True)
class Stored:
    """An answer as it was first given."""

    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Claim:
    """This request holds the key: its effect carries the record; `finish` keeps the answer."""

    repo: Repository
    doc_id: str
    rider: Rider


Replay = Callable[[Repository, str], tuple[int, dict[str, str], Any]]  # (repo, written path) → the answer


def validate(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ApiError(
            Code.INVALID_ARGUMENT,
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
            [{"field": HEADER, "message": "must be 1 to 255 visible ASCII characters"}],
        )
    return key


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request: method, path and body."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def begin(repo: Repository, key: str, request_fingerprint: str, replay: Replay) -> Claim | Stored:
    """Claim the key for this request, or the answer a repeat of it gets."""
    try:
        return _begin(repo, key, request_fingerprint, replay)
    except ApiError as error:
        if error.code is Code.ABORTED:  # racing requests with the key: the client comes back
            error.headers.setdefault("Retry-After", "1")
        raise


def _begin(repo: Repository, key: str, request_fingerprint: str, replay: Replay) -> Claim | Stored:
    doc_id = hashlib.sha256(f"{repo.uid}\0{key}".encode()).hexdigest()[:40]
    for _ in range(3):
        now = datetime.now(UTC)
        fresh = {
            "fingerprint": request_fingerprint,
            "state": "in_flight",
            "lease_until": now + IN_FLIGHT_LEASE,
            "expires_at": now + KEPT_FOR,
            "resource": None,
            "status": None,
            "headers": None,
            "body": None,
        }
        try:
            repo.create(KEYS, fresh, doc_id=doc_id)
            return _claimed(repo, doc_id)
        except ApiError as error:
            if error.code is not Code.ALREADY_EXISTS:
                raise
        try:
            record = repo.get(KEYS, doc_id)
        except ApiError as missing:
            if missing.code is Code.NOT_FOUND:
                continue  # forgotten meanwhile: claim it anew
            raise
        if record["expires_at"] <= now or (record["state"] == "in_flight" and record["lease_until"] <= now):
            # Forgotten after 24 h, or its first request died before any effect: take it over.
            if _take_over(repo, doc_id, record, fresh):
                return _claimed(repo, doc_id)
            continue
        if record["fingerprint"] != request_fingerprint:
            raise ApiError(
                Code.UNPROCESSABLE_ENTITY,
                "This Idempotency-Key was used for another request; use a new key for a new request.",
            )
        if record["state"] == "completed":
            return Stored(int(record["status"]), dict(record["headers"] or {}), json.loads(record["body"]))
        if record["state"] == "committed":
            return _answer_committed(repo, doc_id, record, replay)
        raise ApiError(Code.ABORTED, "A request with this Idempotency-Key is still in progress; retry shortly.")
    raise ApiError(Code.ABORTED, "The Idempotency-Key is being used by other requests; retry shortly.")


def _claimed(repo: Repository, doc_id: str) -> Claim:
    rider = Rider(KEYS, doc_id, lambda path: {"state": "committed", "resource": path})
    repo.rider = rider
    return Claim(repo, doc_id, rider)


def _take_over(repo: Repository, doc_id: str, seen: dict[str, Any], fresh: dict[str, Any]) -> bool:
    taken = False

    def take(current: dict[str, Any]) -> dict[str, Any]:
        nonlocal taken
        taken = current["version"] == seen["version"]
        return fresh if taken else {}

    repo.update(KEYS, doc_id, take)
    return taken


def _answer_committed(repo: Repository, doc_id: str, record: dict[str, Any], replay: Replay) -> Stored:
    """The effect was stored but its answer not (the request failed after its commit): answer
    with what it wrote, and keep that answer."""
    status, headers, body = replay(repo, str(record["resource"]))
    stored = Stored(status, headers, body)
    _keep(repo, doc_id, stored)
    return stored


def finish(claim: Claim, status: int, headers: dict[str, str], body: Any) -> None:
    """Keep the answer. A server failure is not an answer to keep: after an effect the key stays
    `committed` (a retry answers with what was written), before one it is freed, as it is after
    a refusal that changed nothing (a corrected retry goes through)."""
    if status >= 500:
        abandon(claim)
        return
    claim.repo.rider = None
    if not claim.rider.rode and status >= 400:
        claim.repo.delete(KEYS, claim.doc_id)
        return
    kept = {name: value for name, value in headers.items() if name in KEPT_HEADERS}
    _keep(claim.repo, claim.doc_id, Stored(status, kept, body))


def abandon(claim: Claim) -> None:
    """The request failed unexpectedly: without an effect the key is freed for a retry; with one
    it stays `committed`, so the retry answers with what was written."""
    claim.repo.rider = None
    if not claim.rider.rode:
        try:
            claim.repo.delete(KEYS, claim.doc_id)
        except ApiError:
            logger.warning("idempotency key not freed; its lease frees it", exc_info=True)


def _keep(repo: Repository, doc_id: str, stored: Stored) -> None:
    from common.http import json_default

    body = json.dumps(stored.body, default=json_default, ensure_ascii=False)
    fields = {"state": "completed", "status": stored.status, "headers": stored.headers, "body": body}
    repo.set_fields(KEYS, doc_id, fields)  # the key is this request's: no read, no compare
