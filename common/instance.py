"""What one function instance keeps between requests — its settings, clients and caches — and
one way to start afresh: `reset()`, for a test that changed the environment.

A value built from the environment is declared `@per_instance` (built on first use, once); other
state an instance accumulates registers how it is emptied with `on_reset`. Memoized pure
functions of their arguments stay plain `functools.cache`: nothing to forget. firebase-admin's
app (`auth.firebase_app`) is forgotten too: firebase_admin keeps it by name, so its reset deletes it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_resets: list[Callable[[], None]] = []


def per_instance(build: Callable[[], T]) -> Callable[[], T]:
    """`build()`, made once per instance on first use; `reset()` forgets it."""
    cached = functools.cache(build)
    _resets.append(cached.cache_clear)
    return cached


def on_reset(clear: Callable[[], None]) -> None:
    """Have `reset()` call `clear` (say a per-instance set's `clear`)."""
    _resets.append(clear)


def reset() -> None:
    """Forget everything the instance built or gathered: the next use builds it from the
    environment as it is now, as a new instance would."""
    for clear in _resets:
        clear()
