"""Model spend per user and UTC day (DESIGN §4): the day's figures, the refusal once the budget is
spent, and the meter that counts every model call of a chat turn or a contract parse.

Tokens are counted as the providers report them, input and output, in `usage/{uid}-{YYYYMMDD}`
by Firestore increments: two turns of one user at once add up, and recording reads nothing. A
call cut off after the model began answering, before its provider reported every figure (a Stop,
a broken stream), is counted at no less than an estimate of what was sent and said, four
characters a token, so stopping a turn just before its end does not make it free. The day's
figures are read once, beside a request's other reads; the budget is checked before each model
call, and each call is recorded after it ends, in the background, off the path to the first token.
"""

from __future__ import annotations

import contextvars
import json
import math
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as midnight
from typing import Any

from common.collections import USAGE
from common.errors import ApiError, Code
from common.llm import Finished, ModelRequest, TextDelta, ToolCallDelta, Usage
from common.log import get_logger
from common.settings import get_settings
from common.store import Repository

logger = get_logger(__name__)

# The share of the budget whose crossing is logged (terraform's monitoring alerts on the line),
# besides the crossing of the whole budget.
ALERT_SHARE = 0.8
CHARS_PER_TOKEN = 4  # the estimate of a call cut off before its figures came, as history.py's

_RECORDS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="usage")


@dataclass(frozen=True)
class DailyUsage:
    """A user's model tokens of one UTC day, and the day's budget."""

    day: date
    tokens_used: int
    token_budget: int

    @property
    def resets_at(self) -> datetime:
        return datetime.combine(self.day + timedelta(days=1), midnight(), UTC)

    @property
    def spent(self) -> bool:
        return self.tokens_used >= self.token_budget

    def public(self) -> dict[str, Any]:
        """GET /usage."""
        return {
            "day": self.day.isoformat(),
            "tokens_used": self.tokens_used,
            "token_budget": self.token_budget,
            "resets_at": f"{self.resets_at:%Y-%m-%dT%H:%M:%SZ}",
        }


def today(repo: Repository) -> DailyUsage:
    """The caller's tokens of today (UTC) and the budget: one read."""
    day = datetime.now(UTC).date()
    return of_day(day, repo.find_keyed(USAGE, day_id(repo.uid, day)))


def of_day(day: date, stored: Mapping[str, Any] | None) -> DailyUsage:
    """The figures of `day` from its stored document (`day_id`; None: nothing used yet)."""
    return DailyUsage(day, int((stored or {}).get("tokens_used") or 0), get_settings().daily_token_budget)


def day_id(uid: str, day: date) -> str:
    """The id of the user's usage document of `day`."""
    return f"{uid}-{day:%Y%m%d}"


def _retry_after(daily: DailyUsage) -> int:
    return max(1, math.ceil((daily.resets_at - datetime.now(UTC)).total_seconds()))


def _spent_message(daily: DailyUsage) -> str:
    return f"Today's model budget of {daily.token_budget:,} tokens is spent; it renews at 00:00 UTC."


class BudgetSpentError(Exception):
    """The day's budget ran out during a chat turn or a parse: no further model call is made."""

    def __init__(self, daily: DailyUsage) -> None:
        self.message = _spent_message(daily)
        super().__init__(self.message)
        self.daily = daily


@dataclass(frozen=True)
class ModelCall:
    """One model call as counted: the provider's figures, or an estimate where it was cut off."""

    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    estimated: bool = False

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Meter:
    """The model calls of one chat turn or contract parse, counted against the day's budget.

    Made from the day's figures read before the first call, it refuses at once (429, with
    `Retry-After` until midnight UTC) when they are spent, before the request writes anything.
    `call()` before each model call (a `BudgetSpentError` once the budget ran out meanwhile)
    counts that call's events; its `end()` records it. `settle()` at the end waits for the
    records and logs the calls.
    """

    def __init__(self, repo: Repository, daily: DailyUsage) -> None:
        if daily.spent:
            wait = str(_retry_after(daily))
            raise ApiError(Code.RESOURCE_EXHAUSTED, _spent_message(daily), headers={"Retry-After": wait})
        self._repo = repo
        self.daily = daily
        self.calls: list[ModelCall] = []
        self._lock = threading.Lock()
        self._counted = 0  # this meter's calls, recorded or not
        self._reported = daily.tokens_used  # the highest day total Firestore answered (every turn of the user's)
        self._records: list[Future[None]] = []

    @property
    def tokens_used(self) -> int:
        """The day's tokens as far as this meter knows: read, counted here, and told by its records."""
        with self._lock:
            return max(self.daily.tokens_used + self._counted, self._reported)

    def call(self, provider: str, request: ModelRequest) -> CallCount:
        """A model call about to be made, refused once the day's budget is spent."""
        used = self.tokens_used
        if used >= self.daily.token_budget:
            raise BudgetSpentError(DailyUsage(self.daily.day, used, self.daily.token_budget))
        return CallCount(self, provider, request)

    def count(self, call: ModelCall) -> None:
        """Count a call that ended, and record it in the background."""
        with self._lock:
            self.calls.append(call)
            self._counted += call.tokens
        if call.tokens:
            record = contextvars.copy_context().run
            self._records.append(_RECORDS.submit(record, self._record, call))

    def _record(self, call: ModelCall) -> None:
        counts = {
            "tokens_used": call.tokens,
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "model_calls": 1,
        }
        try:
            total = self._repo.add(USAGE, day_id(self._repo.uid, self.daily.day), counts, {"day": str(self.daily.day)})
        except Exception:
            logger.exception("model usage not recorded", extra={"fields": {"uid": self._repo.uid, **asdict(call)}})
            return
        after = total["tokens_used"]
        with self._lock:
            self._reported = max(self._reported, after)
        _log_crossings(self._repo.uid, after - call.tokens, after, self.daily.token_budget)

    def settle(self, **context: Any) -> None:
        """Wait for the calls' records, then log them (with `context`, say the session)."""
        for record in self._records:
            record.result()
        calls = [asdict(call) for call in self.calls]
        fields = {
            **context,
            "calls": calls,
            "input_tokens": sum(call["input_tokens"] for call in calls),
            "output_tokens": sum(call["output_tokens"] for call in calls),
            "tokens_used": self.tokens_used,
            "token_budget": self.daily.token_budget,
        }
        logger.info("model usage", extra={"fields": fields})


def _log_crossings(uid: str, before: int, after: int, budget: int) -> None:
    """A line when this addition took the day past a share of the budget: one addition crosses it,
    however many run at once, since each knows the total just before and just after it."""
    for share, message in ((ALERT_SHARE, "model budget mostly spent"), (1.0, "model budget spent")):
        line = share * budget
        if budget and before < line <= after:
            fields = {"uid": uid, "tokens_used": after, "token_budget": budget, "share": share}
            logger.warning(message, extra={"fields": fields})


class CallCount:
    """What one model call spends, from its events as they arrive; `end()` counts it once."""

    def __init__(self, meter: Meter, provider: str, request: ModelRequest) -> None:
        self._meter = meter
        self._provider = provider
        self._request = request
        self._reported = Usage()
        self._said = 0  # characters of text and tool input the model sent
        self._finished = False
        self._ended = False

    def take(self, event: object) -> None:
        if isinstance(event, Usage):  # the provider's figures so far
            self._reported = event
        elif isinstance(event, Finished):
            self._reported, self._finished = event.usage, True
        elif isinstance(event, TextDelta):
            self._said += len(event.text)
        elif isinstance(event, ToolCallDelta):
            self._said += len(event.json_text)

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        usage, estimated = self._reported, False
        if self._said and not self._finished:  # cut off while the model answered
            sent = _tokens(_characters_sent(self._request))
            usage = Usage(max(usage.input_tokens, sent), max(usage.output_tokens, _tokens(self._said)))
            estimated = usage != self._reported
        call = ModelCall(self._provider, self._request.model, usage.input_tokens, usage.output_tokens, estimated)
        self._meter.count(call)


def _tokens(characters: int) -> int:
    return math.ceil(characters / CHARS_PER_TOKEN)


def _characters_sent(request: ModelRequest) -> int:
    """The request's text: its system prompt, turns and tools, as JSON."""
    turns = json.dumps([asdict(turn) for turn in request.turns], default=str)
    tools = json.dumps([asdict(tool) for tool in request.tools])
    return len(request.system) + len(turns) + len(tools)
