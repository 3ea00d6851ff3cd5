"""A model call tried again, one way for the chat and for contracts (tenacity underneath).

A failure that trying again may mend (`ProviderError.retryable`: 429, 5xx, overloaded, a broken
connection) is tried again after 0.4, 1 and 2 s; any other failure, or a fourth one, is raised as
it is. Every failed attempt is one `model call failed` line (monitoring counts them:
terraform/modules/monitoring), `retried` when it is tried again. A caller that must not try again
once an attempt has shown something (a chat turn, after its first token) says so with `retry_if`;
one that can be stopped while it waits gives its own `sleep`, which raises to end the attempts.
Each attempt is the caller's block:

    for attempt in retries.attempts(provider_name, model):
        with attempt:
            ...  # open the call, read its events, return what it answered
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from common.llm import ProviderError
from common.log import get_logger

if TYPE_CHECKING:
    import tenacity

logger = get_logger(__name__)

RETRY_DELAYS = (0.4, 1.0, 2.0)  # the waits before the second, third and fourth attempts


def attempts(
    provider: str,
    model: str,
    *,
    retry_if: Callable[[ProviderError], bool] = lambda _error: True,
    sleep: Callable[[float], None] = time.sleep,
) -> tenacity.Retrying:
    """The attempts of one call of `model` at `provider`: a retryable failure for which `retry_if`
    holds is tried again after the next of RETRY_DELAYS (waited with `sleep`); anything else
    leaves the loop."""
    import tenacity  # on the first model call, not at a cold start

    def retried(state: tenacity.RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome is not None else None
        if not isinstance(error, ProviderError):
            return False  # an answer, or a failure that is not the model's: it leaves the loop as it is
        again = error.retryable and state.attempt_number <= len(RETRY_DELAYS) and retry_if(error)
        fields = {
            "provider": provider,
            "model": model,
            "error": error.message,
            "retryable": error.retryable,
            "retried": again,
            "attempt": state.attempt_number,
        }
        logger.warning("model call failed", extra={"fields": fields})
        return again

    return tenacity.Retrying(
        retry=retried,
        wait=tenacity.wait_chain(*(tenacity.wait_fixed(delay) for delay in RETRY_DELAYS)),
        stop=tenacity.stop_after_attempt(len(RETRY_DELAYS) + 1),
        sleep=sleep,
        reraise=True,
    )
