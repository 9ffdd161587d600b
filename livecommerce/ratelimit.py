"""In-process token buckets: buys per viewer token, requests per client IP, messages per
WebSocket connection. A limit stops double clicks and floods from one client; it is not a
cluster-wide quota (each process counts its own traffic)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``."""

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float | None = None) -> TokenBucket:
        return cls(rate, burst, burst, time.monotonic() if now is None else now)

    def take(self, now: float | None = None, cost: float = 1.0) -> float:
        """Take ``cost`` tokens: 0.0 when allowed, else the seconds until it would be."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per key (a token, an IP), the least recently used forgotten first."""

    def __init__(self, rate: float, burst: float | None = None, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else rate
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """0.0 when ``key`` may go ahead, else the seconds it should wait (``Retry-After``)."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket.full(self.rate, self.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)


def retry_after_header(wait_s: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds, at least 1."""
    return {"Retry-After": str(max(1, int(wait_s + 0.999)))}
