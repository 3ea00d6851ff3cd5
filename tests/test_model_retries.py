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
        for attempt in attempts(**options):
            with attempt:
                self.made += 1
                if self.failures:
                    raise self.failures.pop(0)
                return "terms"
        raise AssertionError("unreachable")


def test_the_retries_wait_for_longer_each_time_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert RETRY_DELAYS == (0.4, 1.0, 2.0)  # README: the chat's errors
    call = Call([OVERLOADED, OVERLOADED, OVERLOADED])
    with caplog.at_level(logging.INFO, logger="common.llm.retries"):
        assert call.run() == "terms"
    assert call.made == 4
    assert call.waits == [0.4, 1.0, 2.0]
    retried = [record for record in caplog.records if record.getMessage() == "model call retried"]
    assert [record.fields for record in retried] == [  # type: ignore[attr-defined]
        {"attempt": n, "error": OVERLOADED.message} for n in (1, 2, 3)
    ]


def test_the_fourth_retryable_failure_is_raised_as_it_is() -> None:
    call = Call([OVERLOADED] * 4)
    with pytest.raises(ProviderError) as raised:
        call.run()
    assert raised.value is OVERLOADED
    assert call.made == 4


@pytest.mark.parametrize("failure", [REFUSED, ValueError("the model did not record the terms")], ids=repr)
def test_a_failure_that_trying_again_cannot_mend_is_raised_at_once(failure: Exception) -> None:
    call = Call([failure])
    with pytest.raises(type(failure)) as raised:
        call.run()
    assert raised.value is failure
    assert (call.made, call.waits) == (1, [])


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
