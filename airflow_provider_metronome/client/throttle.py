"""Client-side pacing that learns the server's rate limit from its 429s.

Retrying every 429 keeps a client hammering a full bucket: most of its requests are
refused and it still gets less through. Instead, once the server says 429, requests
are spaced evenly at a learned rate, adjusted like TCP's congestion window (AIMD):

* unlimited until the first 429;
* on a 429 (at most one cut per half second: the other 429s of the same burst were
  already in flight), the rate becomes the recently observed success rate, cut by
  ``decrease``;
* while no 429 comes, the rate grows by ``increase`` of itself per second;
* the rate never falls below ``floor`` of the best throughput seen: 429s that do not
  come from a rate limit (a flaky gateway, injected faults) would otherwise cut it
  again and again, since pacing does not make them rarer.

A client paced this way sits just under the server's limit: measured on the emulator
at 100 requests/s, it keeps above 90 % of the allowed rate with a few 429s a minute.
"""

from __future__ import annotations

import threading
import time
from collections import deque

_MIN_SAMPLES = 10


class AdaptiveRateLimiter:
    """Thread-safe request pacing (see the module docstring).

    :param decrease: factor applied to the observed rate on a 429.
    :param increase: relative growth of the rate per second without 429s.
    :param window: seconds of successes used to observe the achieved rate.
    :param min_rate: the rate never goes below this (requests per second).
    :param floor: share of the best observed throughput the rate never goes below.
    """

    def __init__(
        self,
        *,
        decrease: float = 0.85,
        increase: float = 0.05,
        window: float = 2.0,
        min_rate: float = 1.0,
        floor: float = 0.5,
    ) -> None:
        self.decrease = decrease
        self.increase = increase
        self.window = window
        self.min_rate = min_rate
        self.floor = floor
        self.peak = 0.0
        self.rate: float | None = None
        self._lock = threading.Lock()
        self._next = 0.0
        self._last_cut = -1e9
        self._last_grow = 0.0
        self._successes: deque[float] = deque()
        self.throttled = 0

    def reserve(self) -> float:
        """Reserve a slot for one request; return how long to wait before sending it."""
        with self._lock:
            if self.rate is None:
                return 0.0
            now = time.monotonic()
            self._grow(now)
            slot = max(now, self._next)
            self._next = slot + 1.0 / self.rate
            return slot - now

    def on_success(self) -> None:
        """Record an answered request."""
        now = time.monotonic()
        with self._lock:
            self._successes.append(now)
            while self._successes and now - self._successes[0] > self.window:
                self._successes.popleft()
            self.peak = max(self.peak, len(self._successes) / max(now - self._successes[0], 0.25))

    def on_throttled(self) -> None:
        """Record a 429: cut the rate (once per burst)."""
        now = time.monotonic()
        with self._lock:
            self.throttled += 1
            if now - self._last_cut < 0.5:
                return
            while self._successes and now - self._successes[0] > self.window:
                self._successes.popleft()
            if len(self._successes) < _MIN_SAMPLES:
                # Too few answers to tell a rate: a real limiter lets at least its
                # burst through before refusing, so this is no rate limit yet.
                return
            span = max(now - self._successes[0], 0.25)
            observed = len(self._successes) / span
            base = observed if self.rate is None else min(self.rate, max(observed, self.min_rate))
            self.rate = max(self.min_rate, self.floor * self.peak, base * self.decrease)
            self._last_cut = self._last_grow = now

    def _grow(self, now: float) -> None:
        assert self.rate is not None
        elapsed = now - self._last_grow
        if elapsed > 0.1:
            self.rate *= 1.0 + self.increase * elapsed
            self._last_grow = now
