"""Token-bucket rate limiting per device and per client address, in memory and bounded.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; each request takes one.
At most ``max_keys`` buckets are kept: the least recently used is dropped first (a dropped bucket
comes back full, which only ever errs towards letting a request through).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucketLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float | None:
        """Take one token; None if allowed, else the seconds to wait before retrying."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            retry = None
        else:
            self._buckets[key] = (tokens, now)
            retry = (1.0 - tokens) / self._rate
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return retry


def retry_after_header(seconds: float) -> str:
    """Retry-After wants whole seconds; round up so a client that obeys it succeeds."""
    return str(max(1, math.ceil(seconds)))
