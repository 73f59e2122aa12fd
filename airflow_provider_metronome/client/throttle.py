"""Client-side pacing that learns the server's rate limit from its 429s.

Metronome answers 429 when "too many requests hit the API too quickly" and asks the
client to wait and try again later (https://docs.metronome.com/api-reference/status-codes.md).
Retrying every 429 keeps a client hammering a full bucket: most of its requests are
refused, each climbs its own backoff ladder, and the client gets less through. Instead,
once the server says 429, every request of the client (all its threads share one
limiter) is spaced evenly at a learned rate, adjusted like TCP's congestion window:

* unlimited until the first 429;
* on a 429, once the client has answers enough to tell a rate (a real limiter lets
  at least its burst through before refusing; until then the request's own backoff
  covers it), the rate becomes the recently observed success rate, cut by
  ``decrease``. The first such rate is rough (the client was backing off), so it
  grows fast (``probe`` of itself per second) until the next 429. The 429s of
  requests that got their slot before a cut say nothing about the new rate: they
  are only counted;
* after any 429, no request of the client is sent before the ``Retry-After`` the
  server asked has passed;
* while no 429 comes, the rate grows by ``increase`` of itself per second, as long
  as the pace actually holds requests back (a rate the client does not use proves
  nothing, and would let a burst through later);
* the rate never falls below ``floor`` of the best throughput seen over a full
  ``window``: 429s that do not come from a rate limit (a flaky gateway, injected
  faults) would otherwise cut it again and again, since pacing does not make them
  rarer.

A client paced this way sits just under the server's limit: against a limit of
10 requests/s with a burst of 2, a 24-thread sync is answered about 9 requests/s
with a 429 every few seconds.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

# Successes needed in one window to tell a rate from them.
_MIN_SAMPLES = 10
# With fewer (a slow limit), the rate is read from this many at least, over a longer span.
_FEW_SAMPLES = 3


class AdaptiveRateLimiter:
    """Thread-safe request pacing (see the module docstring).

    :param decrease: factor applied to the observed rate on a 429.
    :param increase: relative growth of the rate per second without 429s.
    :param probe: relative growth per second of the first, guessed rate, until the next 429.
    :param window: seconds of successes used to observe the achieved rate.
    :param horizon: seconds of successes kept to observe a slow rate (fewer than
        ``_MIN_SAMPLES`` answers per window).
    :param min_rate: the rate never goes below this (requests per second).
    :param floor: share of the best observed throughput the rate never goes below.
    :param clock: monotonic clock (tests pass a fake one).
    """

    def __init__(
        self,
        *,
        decrease: float = 0.85,
        increase: float = 0.05,
        probe: float = 0.7,
        window: float = 2.0,
        horizon: float = 10.0,
        min_rate: float = 1.0,
        floor: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.decrease = decrease
        self.increase = increase
        self.probe = probe
        self.window = window
        self.horizon = max(horizon, window)
        self.min_rate = min_rate
        self.floor = floor
        self.clock = clock
        self.peak = 0.0
        self.rate: float | None = None
        self.throttled = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._first: float | None = None
        self._probing = False
        self._episode = 0.0  # the first 429 of the current run of 429s
        self._last_throttled = -1e9
        self._next = 0.0  # the next free slot
        self._hold = -1e9  # 429s before this time were sent at an older pace
        self._held = -1e9  # when the pace last held a request back
        self._last_grow = 0.0
        self._recent: deque[float] = deque()  # successes of the last window
        self._successes: deque[float] = deque()  # successes of the horizon

    def reserve(self) -> float:
        """Reserve a slot for one request; return how long to wait before sending it."""
        with self._lock:
            now = self._now()
            if self.rate is None:
                return 0.0
            self._grow(now)
            slot = max(now, self._next)
            if slot > now:
                self._held = now
            self._next = slot + 1.0 / self.rate
            return slot - now

    def on_success(self) -> None:
        """Record an answered request."""
        with self._lock:
            now = self._now()
            self._recent.append(now)
            self._successes.append(now)
            self._prune(now)
            self._update_peak(now)

    def on_throttled(self, retry_after: float | None = None) -> None:
        """Record a 429: hold every request until ``retry_after``; cut the rate.

        :param retry_after: the wait the server asked for, in seconds, if it said.
        """
        with self._lock:
            now = self._now()
            self.throttled += 1
            if now - self._last_throttled > self.horizon:
                self._episode = now
            self._last_throttled = now
            if self.rate is not None and retry_after:
                # The bucket is empty for everyone until then: no slot before it.
                self._next = max(self._next, now + retry_after)
            if now < self._hold:
                return
            self._prune(now)
            observed = self._observed(now)
            if observed is None:
                return
            if self.rate is None:
                base = observed
                self._probing = True
            else:
                base = min(self.rate, max(observed, self.min_rate))
                self._probing = False
            self.rate = max(self.min_rate, self.floor * self.peak, base * self.decrease)
            self.cuts += 1
            self._last_grow = now
            if retry_after:
                self._next = max(self._next, now + retry_after)
            # Requests already given a slot go at the old pace: their 429s are no news.
            # At least half a second, as the 429s of one burst arrive together.
            self._hold = max(now + 0.5, self._next)

    def current_rate(self) -> float | None:
        """The pace in requests per second, ``None`` while unlimited."""
        with self._lock:
            if self.rate is not None:
                self._grow(self._now())
            return self.rate

    # -- internals (called with the lock held) ---------------------------------------

    def _now(self) -> float:
        now = self.clock()
        if self._first is None:
            self._first = now
        return now

    def _prune(self, now: float) -> None:
        while self._recent and now - self._recent[0] > self.window:
            self._recent.popleft()
        while self._successes and now - self._successes[0] > self.horizon:
            self._successes.popleft()

    def _observed(self, now: float) -> float | None:
        """The success rate of the last ``window`` (or, when slow, of the ``horizon``).

        Unpaced, only the time since the first 429 counts: before it the client may
        have asked for less than the server allows, which is no measure of the limit.
        """
        assert self._first is not None
        start = self._episode if self.rate is None else self._first
        for span, needed in ((self.window, _MIN_SAMPLES), (self.horizon, _FEW_SAMPLES)):
            begin = max(now - span, start)
            elapsed = now - begin
            if elapsed < self.window / 2:
                return None
            samples = self._recent if span == self.window else self._successes
            count = len(samples) - bisect.bisect_left(samples, begin)
            if count >= needed:
                return count / elapsed
        return None

    def _update_peak(self, now: float) -> None:
        # Throughput over a full window only: a burst let through at the start (or
        # after a pause) would otherwise pass for the sustained rate.
        count = len(self._recent)
        span = now - self._recent[0] if count else 0.0
        if count >= _MIN_SAMPLES and span >= self.window / 2:
            self.peak = max(self.peak, (count - 1) / span)

    def _grow(self, now: float) -> None:
        assert self.rate is not None
        elapsed = now - self._last_grow
        if elapsed > 0.1:
            # Grow while the pace holds requests back, and to twice the best
            # throughput seen at most: slots handed out earlier can keep requests
            # waiting while the pace itself is already far above what gets through.
            if now - self._held < 1.0 and not (self.peak and self.rate > 2 * self.peak):
                self.rate *= 1.0 + (self.probe if self._probing else self.increase) * elapsed
            self._last_grow = now
