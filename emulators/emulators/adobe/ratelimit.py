"""Token buckets for DCS's documented rates (1,000 requests/s and 10,000 messages/s per org,
60 syncValidation requests/minute per inlet; EN ``help/ingestion/streaming-ingestion/overview.md``)."""

from __future__ import annotations

import math
import time


class TokenBucket:
    """``rate`` tokens per ``per`` seconds, bursting up to one period's worth."""

    def __init__(self, rate: float, per: float = 1.0) -> None:
        self.capacity = rate
        self._refill_per_second = rate / per
        self._tokens = rate
        self._updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self._refill_per_second)
        self._updated = now

    def retry_after(self, cost: float = 1.0) -> int | None:
        """Take ``cost`` tokens and return ``None``; or, when there are too few, the whole seconds to wait."""
        self._refill()
        cost = min(cost, self.capacity)  # a request larger than the burst waits for a full bucket
        if self._tokens >= cost:
            self._tokens -= cost
            return None
        return max(1, math.ceil((cost - self._tokens) / self._refill_per_second))
