"""common.llm.retries in-process (no emulator, no model): which failures of a model call are tried
again, after which waits, and when the attempts end."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

from common.llm import ProviderError
from common.llm.retries import RETRY_DELAYS, attempts

OVERLOADED = ProviderError("The model answered with an error (overloaded_error).", retryable=True)
REFUSED = ProviderError("The model answered with an error (invalid_request_error).", retryable=False)


class Call:
    """A model call whose attempts fail as `failures` says, in turn, then answer "terms"."""

    def __init__(self, failures: Sequence[Exception]) -> None:
        self.failures = list(failures)
        self.made = 0
        self.waits: list[float] = []

    def run(self, **options: Any) -> str:
        options.setdefault("sleep", self.waits.append)
        for attempt in attempts("claude", "claude-test", **options):
            with attempt:
                self.made += 1
                if self.failures:
                    raise self.failures.pop(0)
                return "terms"
        raise AssertionError("unreachable")


def failed_calls(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [record.fields for record in caplog.records if record.getMessage() == "model call failed"]  # type: ignore[attr-defined]


def test_the_retries_wait_for_longer_each_time_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert RETRY_DELAYS == (0.4, 1.0, 2.0)  # README: the chat's errors
    call = Call([OVERLOADED, OVERLOADED, OVERLOADED])
    with caplog.at_level(logging.INFO, logger="common.llm.retries"):
        assert call.run() == "terms"
    assert call.made == 4
    assert call.waits == [0.4, 1.0, 2.0]
    assert failed_calls(caplog) == [
        {
            "provider": "claude",
            "model": "claude-test",
            "error": OVERLOADED.message,
            "retryable": True,
            "retried": True,
            "attempt": n,
        }
        for n in (1, 2, 3)
    ]


def test_the_fourth_retryable_failure_is_raised_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    call = Call([OVERLOADED] * 4)
    with caplog.at_level(logging.INFO, logger="common.llm.retries"), pytest.raises(ProviderError) as raised:
        call.run()
    assert raised.value is OVERLOADED
    assert call.made == 4
    assert [fields["retried"] for fields in failed_calls(caplog)] == [True, True, True, False]


@pytest.mark.parametrize("failure", [REFUSED, ValueError("the model did not record the terms")], ids=repr)
def test_a_failure_that_trying_again_cannot_mend_is_raised_at_once(
    failure: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    call = Call([failure])
    with caplog.at_level(logging.INFO, logger="common.llm.retries"), pytest.raises(type(failure)) as raised:
        call.run()
    assert raised.value is failure
    assert (call.made, call.waits) == (1, [])
    # The model's refusal is a failed call, not retried; a failure that is not the model's is not one.
    expected = [(False, False)] if isinstance(failure, ProviderError) else []
    assert [(fields["retryable"], fields["retried"]) for fields in failed_calls(caplog)] == expected


def test_a_caller_that_showed_something_already_is_not_retried() -> None:
    call = Call([OVERLOADED, OVERLOADED, OVERLOADED])
    # The second attempt got as far as a first token before it failed: that failure is the caller's.
    with pytest.raises(ProviderError):
        call.run(retry_if=lambda _error: call.made < 2)
    assert (call.made, call.waits) == (2, [0.4])


def test_a_wait_that_is_stopped_ends_the_attempts() -> None:
    class StoppedError(Exception):
        pass

    def stopped(_seconds: float) -> None:
        raise StoppedError

    call = Call([OVERLOADED])
    with pytest.raises(StoppedError):
        call.run(sleep=stopped)
    assert call.made == 1
