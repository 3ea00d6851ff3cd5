"""`Idempotency-Key` (DESIGN §4): a retried POST that creates or decides has its effect once.

A route takes a key by declaring `idempotent=Replay(read_back, status)`; `Replay` runs the whole
protocol around its handler. A route whose answer is the document it creates (`shown=`) costs no
more than without a key: the handler gets the key's whole record as `along`, created, answer and
all, in the effect's own commit, which holds only if the key is new; where it is not, the key's
record answers as below, so requests racing with one key make one effect and get one answer.
Any other route's first request with a key claims it (a record per user and
key, `in_flight`, created already held under a short lease of `common/lease.py`). The handler
gets the record's `committed` mark as `along` and hands it to the one write that is its effect,
which stores both together, the lease let go with it, or neither. When the answer is ready,
the record keeps it (`completed`: status, ETag/Location, body) for 24 hours. A repeat of the
same request gets that answer again with `Idempotent-Replayed: true`; one that finds the effect
committed but no answer (the first request failed after its commit) gets the written object,
read back; the same key with another request is a 422; while the first is in flight, a 409 with
`Retry-After`. A refusal before any effect (validation) is not kept, so a corrected retry with
the same key goes through. Keys are per user: the same key from two users never meets.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from common.collections import IDEMPOTENCY_KEYS
from common.errors import ApiError, Code
from common.http import AnyReply, Context, Reply
from common.lease import Lease
from common.lease import held as lease_held
from common.log import get_logger
from common.store import Companion, Repository
from common.validation import json_default

logger = get_logger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEPT_FOR = timedelta(hours=24)
IN_FLIGHT_SECONDS = 60  # a first request that died before its effect frees its key after this
KEPT_HEADERS = ("ETag", "Location")
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII
T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """An answer as it was first given."""

    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class HeldKey:
    """This request holds the key (`lease`): its effect carries `record`; `_finish` keeps the answer."""

    repo: Repository
    doc_id: str
    lease: Lease
    record: Companion


@dataclass(frozen=True)
class Replay:
    """What a route that creates or decides declares as `idempotent=`: the Idempotency-Key
    protocol around its handler. `read_back` is the route's own loader of what the effect wrote,
    answered with `status` to a retry that finds the effect stored but not its answer. A route
    whose answer is the document its effect creates names how that document is `shown`: the
    key's record is then created with the effect, its answer (the document) in it, one commit."""

    read_back: Callable[[Repository, str], BaseModel]
    status: int
    shown: Callable[[Mapping[str, Any]], BaseModel] | None = None

    def __call__(self, ctx: Context, run: Callable[[Companion | None], AnyReply]) -> AnyReply:
        """Run the handler (`run`, its refusals already answers) once per key; without a key, as is."""
        raw_key = ctx.request.headers.get(HEADER)
        if raw_key is None:
            return run(None)
        repo, request = ctx.repo, ctx.request
        doc_id = hashlib.sha256(f"{repo.uid}\0{_validate(raw_key)}".encode()).hexdigest()[:40]
        request_fingerprint = _fingerprint(request.method, request.path, _body_digest(ctx))
        if self.shown is not None:
            created = self._create_once(repo, doc_id, request_fingerprint, run)
            if created is not None:
                return created
        held = _begin(repo, doc_id, request_fingerprint, self)
        if isinstance(held, Answer):
            return _replayed(held)
        try:
            reply = run(held.record)
        except BaseException:
            _abandon(held)
            raise
        if not isinstance(reply, Reply):
            _abandon(held)
            return reply
        _finish(held, reply.status, reply.headers, reply.body)
        return reply

    def _create_once(
        self, repo: Repository, doc_id: str, request_fingerprint: str, run: Callable[[Companion | None], AnyReply]
    ) -> AnyReply | None:
        """A route whose answer is the document it creates: the key's record, its answer in it, is
        created in the effect's own commit, which holds only if the key is new. A refusal with
        nothing written is then judged by the key: a repeat gets the first answer, another request
        a 422, while one holds the key a 409. None: the key is there and free (forgotten, or left
        by a request that died), or was gone when looked for: it is claimed as any key is."""
        record = Companion(
            IDEMPOTENCY_KEYS, doc_id, functools.partial(_created, request_fingerprint, self.status), created=True
        )
        reply = run(record)
        if record.written or not isinstance(reply, Reply) or reply.status < 400:
            return reply
        # A repeat can be refused where its first went through (the cap reached, its customer
        # deleted since): the key, if there, answers. The key's own conflict is a 409.
        kept = repo.find(IDEMPOTENCY_KEYS, doc_id)
        if kept is None:
            return None if reply.status == Code.ALREADY_EXISTS.http_status else reply
        if _free(kept, datetime.now(UTC)):
            return None
        return _replayed(_retry_later(lambda: _kept(repo, doc_id, kept, request_fingerprint, self)))

    def answer(self, repo: Repository, path: str) -> Answer:
        """The answer of the object the effect wrote at `path`, read back."""
        return _answer(self.read_back(repo, path.rsplit("/", 1)[-1]), self.status)


def _answer(shown: BaseModel, status: int) -> Answer:
    reply = Reply.resource(shown, status)
    return Answer(reply.status, reply.headers, reply.body)


def _replayed(answer: Answer) -> Reply:
    return Reply(answer.body, answer.status, {**answer.headers, REPLAYED: "true"})


def _validate(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ApiError(
            Code.INVALID_ARGUMENT,
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
            [{"field": HEADER, "message": "must be 1 to 255 visible ASCII characters"}],
        )
    return key


def _body_digest(ctx: Context) -> bytes:
    """The body as a request's identity: the raw bytes, or for a form its fields and files,
    which arrive in a different framing on each retry."""
    if ctx.request.mimetype != "multipart/form-data":
        return ctx.body_bytes()
    upload = ctx.upload()
    digest = hashlib.sha256()
    for name in sorted(upload.fields):
        digest.update(f"field\0{name}\0{upload.fields[name]}\0".encode())
    for name in sorted(upload.files):
        file = upload.files[name]
        digest.update(f"file\0{name}\0{file.filename}\0".encode())
        digest.update(hashlib.sha256(file.read()).digest())
        file.seek(0)
    return digest.digest()


def _fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request: method, path and body."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _retry_later(call: Callable[[], T]) -> T:
    """What `call` gives; a 409 of racing requests with the key tells the client to come back."""
    try:
        return call()
    except ApiError as error:
        if error.code is Code.ABORTED:
            error.headers.setdefault("Retry-After", "1")
        raise


def _begin(repo: Repository, doc_id: str, request_fingerprint: str, replay: Replay) -> HeldKey | Answer:
    """Claim the key for this request, or the answer a repeat of it gets."""
    return _retry_later(lambda: _claim(repo, doc_id, request_fingerprint, replay))


def _claim(repo: Repository, doc_id: str, request_fingerprint: str, replay: Replay) -> HeldKey | Answer:
    for _ in range(3):
        now = datetime.now(UTC)
        lease = Lease(repo, IDEMPOTENCY_KEYS, doc_id, seconds=IN_FLIGHT_SECONDS)
        fresh = {
            "fingerprint": request_fingerprint,
            "state": "in_flight",
            "expires_at": now + KEPT_FOR,
            "resource": None,
            "status": None,
            "headers": None,
            "body": None,
        }
        try:
            repo.create(IDEMPOTENCY_KEYS, {**fresh, **lease.fields()}, doc_id=doc_id)  # created held
            return _held(repo, doc_id, lease)
        except ApiError as error:
            if error.code is not Code.ALREADY_EXISTS:
                raise
        record = repo.find(IDEMPOTENCY_KEYS, doc_id)
        if record is None:
            continue  # forgotten meanwhile: claim it anew
        if _free(record, now):
            # Forgotten after 24 h, or its first request died before any effect: take it over.
            if lease.take(functools.partial(_fresh_if_free, fresh)) is not None:
                return _held(repo, doc_id, lease)
            continue
        return _kept(repo, doc_id, record, request_fingerprint, replay)
    raise ApiError(Code.ABORTED, "The Idempotency-Key is being used by other requests; retry shortly.")


def _kept(repo: Repository, doc_id: str, record: dict[str, Any], request_fingerprint: str, replay: Replay) -> Answer:
    """The answer a request gets from a key another request took (and has not let go)."""
    if record["fingerprint"] != request_fingerprint:
        raise ApiError(
            Code.UNPROCESSABLE_ENTITY,
            "This Idempotency-Key was used for another request; use a new key for a new request.",
        )
    if record["state"] == "completed" and replay.shown is not None and record.get("document") is not None:
        document = {"id": str(record["resource"]).rsplit("/", 1)[-1], **record["document"]}
        return _answer(replay.shown(document), int(record["status"]))
    if record["state"] == "completed":
        return Answer(int(record["status"]), dict(record["headers"] or {}), json.loads(record["body"]))
    if record["state"] == "committed":
        return _answer_committed(repo, doc_id, record, replay)
    raise ApiError(Code.ABORTED, "A request with this Idempotency-Key is still in progress; retry shortly.")


def _created(request_fingerprint: str, status: int, path: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a key created with the effect: its answer kept as the document created, whose
    times the commit sets in both alike."""
    return {
        "fingerprint": request_fingerprint,
        "state": "completed",
        "expires_at": datetime.now(UTC) + KEPT_FOR,
        "resource": path,
        "status": status,
        "headers": None,
        "body": None,
        "document": dict(document),
    }


def _free(record: dict[str, Any], now: datetime) -> bool:
    """Whether a record may be claimed anew: forgotten (past 24 h), or in flight under nobody's
    lease (its request died before any effect)."""
    return bool(record["expires_at"] <= now or (record["state"] == "in_flight" and not lease_held(record, now=now)))


def _fresh_if_free(fresh: dict[str, Any], current: dict[str, Any]) -> dict[str, Any] | None:
    """What a take-over writes, judged again on the record as it is at the write."""
    return fresh if _free(current, datetime.now(UTC)) else None


def _held(repo: Repository, doc_id: str, lease: Lease) -> HeldKey:
    # Once committed, the key is no one else's to take: the lease goes with the effect's write.
    record = Companion(
        IDEMPOTENCY_KEYS, doc_id, lambda path, _fields: {"state": "committed", "resource": path, **lease.cleared()}
    )
    return HeldKey(repo, doc_id, lease, record)


def _answer_committed(repo: Repository, doc_id: str, record: dict[str, Any], replay: Replay) -> Answer:
    """The effect was stored but its answer not (the request failed after its commit): answer
    with what it wrote, and keep that answer."""
    answer = replay.answer(repo, str(record["resource"]))
    _keep(repo, doc_id, answer)
    return answer


def _finish(held: HeldKey, status: int, headers: dict[str, str], body: Any) -> None:
    """Keep the answer. A server failure is not an answer to keep: after an effect the key stays
    `committed` (a retry answers with what was written), before one it is freed, as it is after
    a refusal that changed nothing (a corrected retry goes through)."""
    if status >= 500:
        _abandon(held)
        return
    if not held.record.written and status >= 400:
        held.repo.delete(IDEMPOTENCY_KEYS, held.doc_id)
        return
    kept = {name: value for name, value in headers.items() if name in KEPT_HEADERS}
    _keep(held.repo, held.doc_id, Answer(status, kept, body), held.lease.cleared())


def _abandon(held: HeldKey) -> None:
    """The request failed unexpectedly: without an effect the key is freed for a retry; with one
    it stays `committed`, so the retry answers with what was written."""
    if not held.record.written:
        try:
            held.repo.delete(IDEMPOTENCY_KEYS, held.doc_id)
        except ApiError:
            logger.warning("idempotency key not freed; its lease frees it", exc_info=True)


def _keep(repo: Repository, doc_id: str, answer: Answer, also: Mapping[str, Any] | None = None) -> None:
    """Keep `answer` (and write `also` with it: a holder's lease let go)."""
    body = json.dumps(answer.body, default=json_default, ensure_ascii=False)
    fields = {"state": "completed", "status": answer.status, "headers": answer.headers, "body": body, **(also or {})}
    repo.set_fields(IDEMPOTENCY_KEYS, doc_id, fields)  # the key is this request's: no read, no compare
