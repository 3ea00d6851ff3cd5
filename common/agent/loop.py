"""The agent loop: model → tools → model, until the model stops or the steps run out.

Each step streams one model call, turning its events into UI message parts as they arrive,
then runs the tools it called and gives the model their results. A retryable failure of a
model call before it produced anything is retried with backoff, unseen; any other failure
ends the turn with `error`, and so does the day's model budget running out before a call (each
call is counted by the turn's `Meter`). A stop (the CSM's, or their leaving) cuts the model's
connection and ends the turn with `abort`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from common.agent import stream
from common.agent.tools import Tool, ToolContext, offered, run_tool
from common.llm import (
    UNPARSABLE,
    AssistantTurn,
    Finished,
    ModelRequest,
    Provider,
    ProviderError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
    ToolResult,
    ToolResultsTurn,
    Turn,
    Upstream,
    Usage,
    retries,
)
from common.store import Repository
from common.usage import BudgetSpentError, Meter

Status = Literal["complete", "cancelled", "error"]


class StoppedError(Exception):
    """The turn was stopped: by the CSM, or because they left."""


@dataclass
class TurnOutcome:
    status: Status = "complete"
    usage: Usage = field(default_factory=Usage)
    error: str | None = None


@dataclass
class AgentLoop:
    provider: Provider
    model: str
    system: str
    turns: list[Turn]
    repo: Repository
    session_id: str
    auto_approve: list[str]
    emit: Callable[[stream.Part], None]
    max_steps: int = 8
    max_output_tokens: int = 4096
    tools: tuple[Tool, ...] = field(default_factory=lambda: offered(google_connected=False))
    timezone: str = "UTC"
    meter: Meter | None = None  # counts each model call against the day's budget
    stop_reason: str | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)
    _upstream: Upstream | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- control from other threads --------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """End the turn now: the model's connection is cut, whatever it is doing."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
            self._stopped.set()
            upstream = self._upstream
        if upstream is not None:
            upstream.cut()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    # -- the turn -------------------------------------------------------------------------------

    def run(self) -> TurnOutcome:
        outcome = TurnOutcome()
        try:
            for _ in range(self.max_steps):
                self.emit(stream.start_step())
                calls, finish = self._model_step(outcome)
                if calls:
                    self._run_tools(calls)
                self.emit(stream.finish_step())
                if not calls:
                    self.emit(stream.finish("length" if finish.reason == "length" else "stop"))
                    return outcome
            self.emit(stream.finish("length"))  # still calling tools after the last step
            return outcome
        except StoppedError:
            outcome.status = "cancelled"
            self.emit(stream.abort(self.stop_reason or "stopped"))
            return outcome
        except (ProviderError, BudgetSpentError) as error:
            outcome.status, outcome.error = "error", error.message
            self.emit(stream.error(error.message))
            self.emit(stream.finish("error"))
            return outcome

    def _model_step(self, outcome: TurnOutcome) -> tuple[list[ToolCall], Finished]:
        request = ModelRequest(
            self.model,
            self.system,
            tuple(self.turns),
            tuple(tool.spec for tool in self.tools),
            self.max_output_tokens,
        )
        steps: list[_Step] = []  # one per attempt, the latest last
        # Tried again only before the first token: once the CSM saw the answer begin, a failure is the turn's.
        for attempt in retries.attempts(
            self.provider.name, self.model, retry_if=lambda _error: not steps[-1].started, sleep=self._pause
        ):
            with attempt:
                count = self.meter.call(self.provider.name, request) if self.meter is not None else None
                step = _Step(self.emit)
                steps.append(step)
                upstream = self._open_upstream()
                try:
                    for event in self.provider.stream(request, upstream):
                        if count is not None:
                            count.take(event)
                        step.take(event)
                    if self.stopped:  # however the model's stream ended, a stop ends the turn
                        raise StoppedError
                    step.end()
                    outcome.usage = outcome.usage + step.usage
                    self.turns.append(AssistantTurn(step.text, tuple(step.calls)))
                    return step.calls, step.finished
                except StoppedError:
                    step.end()
                    raise
                except ProviderError:
                    step.end()
                    outcome.usage = outcome.usage + step.usage
                    if self.stopped:
                        raise StoppedError from None
                    raise
                finally:
                    self._close_upstream(upstream)
                    if count is not None:
                        count.end()
        raise AssertionError("unreachable")

    def _pause(self, seconds: float) -> None:
        """The wait before a model call is tried again, cut short by a stop."""
        if self._stopped.wait(seconds):
            raise StoppedError

    def _open_upstream(self) -> Upstream:
        upstream = Upstream()
        with self._lock:
            if self._stopped.is_set():
                raise StoppedError
            self._upstream = upstream
        return upstream

    def _close_upstream(self, upstream: Upstream) -> None:
        with self._lock:
            self._upstream = None
        upstream.close()

    def _run_tools(self, calls: list[ToolCall]) -> None:
        results = []
        for call in calls:
            if self.stopped:
                raise StoppedError
            context = ToolContext(self.repo, self.session_id, call.id, self.auto_approve, self.timezone)
            offered_names = {tool.spec.name for tool in self.tools}
            outcome = (
                run_tool(context, call.name, call.input)
                if call.name in offered_names
                else run_tool(context, f"unoffered:{call.name}", call.input)
            )
            if outcome.is_error:
                self.emit(stream.tool_output_error(call.id, _error_text(outcome.output)))
            elif outcome.action is not None and outcome.action.status.value == "pending":
                self.emit(stream.tool_approval_request(outcome.action.id, call.id))
            else:
                self.emit(stream.tool_output_available(call.id, outcome.output))
            results.append(ToolResult(call.id, call.name, outcome.output, outcome.is_error))
        self.turns.append(ToolResultsTurn(tuple(results)))


def _error_text(output: object) -> str:
    if isinstance(output, dict) and isinstance(output.get("error"), str):
        return str(output["error"])
    return str(output)


class _Step:
    """One model call's events, as parts: text in a text part, each tool call's input as it comes."""

    def __init__(self, emit: Callable[[stream.Part], None]) -> None:
        self.emit = emit
        self.text = ""
        self.calls: list[ToolCall] = []
        self.usage = Usage()
        self.finished = Finished("other")
        self.started = False  # anything produced: after that, a failure is not retried
        self._text_id: str | None = None

    def take(self, event: object) -> None:
        if isinstance(event, TextDelta):
            self.started = True
            if self._text_id is None:
                self._text_id = f"text-{uuid.uuid4().hex[:12]}"
                self.emit(stream.text_start(self._text_id))
            self.text += event.text
            self.emit(stream.text_delta(self._text_id, event.text))
        elif isinstance(event, ToolCallStarted):
            self.started = True
            self._end_text()
            self.emit(stream.tool_input_start(event.id, event.name))
        elif isinstance(event, ToolCallDelta):
            self.emit(stream.tool_input_delta(event.id, event.json_text))
        elif isinstance(event, ToolCallDone):
            call = event.call
            shown = {} if UNPARSABLE in call.input else call.input
            self.emit(stream.tool_input_available(call.id, call.name, shown))
            self.calls.append(call)
        elif isinstance(event, Finished):
            self.finished = event
            self.usage = event.usage

    def end(self) -> None:
        self._end_text()

    def _end_text(self) -> None:
        if self._text_id is not None:
            self.emit(stream.text_end(self._text_id))
            self._text_id = None
