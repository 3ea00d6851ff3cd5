"""Per-user rate limiting: a token bucket per user, per instance.

Each instance lets one user make `CSCX_RATE_LIMIT_PER_MINUTE` requests a minute, in bursts of up
to a tenth of that; beyond it the answer is 429 RESOURCE_EXHAUSTED with `Retry-After`. The
buckets live in the instance's memory: with N instances a user can reach N times the limit,
which bounds abuse without a shared store on every request's path.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from common.errors import ApiError, Code
from common.instance import on_reset
from common.settings import get_settings

_MAX_USERS = 10_000  # buckets kept; the least recently seen are dropped beyond it


@dataclass
class _Bucket:
    tokens: float
    updated: float


_buckets: dict[str, _Bucket] = {}
_lock = threading.Lock()
on_reset(_buckets.clear)


def take(uid: str) -> None:
    """Spend one request of the user's allowance, or refuse with 429 and when to come back."""
    per_minute = get_settings().rate_limit_per_minute
    rate = per_minute / 60.0
    burst = max(1.0, per_minute / 10.0)
    now = time.monotonic()
    with _lock:
        bucket = _buckets.pop(uid, None) or _Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        _buckets[uid] = bucket  # most recently seen last
        if len(_buckets) > _MAX_USERS:
            del _buckets[next(iter(_buckets))]
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        wait = math.ceil((1.0 - bucket.tokens) / rate)
    raise ApiError(
        Code.RESOURCE_EXHAUSTED,
        f"Too many requests; try again in {wait} s.",
        headers={"Retry-After": str(wait)},
    )
