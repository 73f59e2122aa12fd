"""Retry policy of the Metronome client: what to retry and how long to wait.

Kept free of Airflow and of the SDK so it can be read and tested alone. It follows
Metronome's status-codes page (https://docs.metronome.com/api-reference/status-codes.md):
connection errors, timeouts, 408, 429 ("Too many requests hit the API too quickly":
wait and try again later) and 5xx ("Retry your request") are retried with exponential
backoff and jitter, never sooner than ``retry-after-ms`` / ``Retry-After`` asks.

* **429** is retried for as long as the request's wait budget (``max_total_wait``)
  lasts, not ``max_retries`` times: a rate limit is a matter of time, and a handful of
  quick retries into a full bucket only burns the attempts. Each wait is the larger of
  what the server asked and the exponential backoff, so the consecutive 429s of one
  request wait longer and longer.
* **409** on a write that carries an Idempotency-Key is retried a few times, shortly,
  with the *same* key: Metronome applies a key once the request "begins executing
  (passes validation and doesn't conflict with another concurrent request)"
  (https://docs.metronome.com/api-reference/idempotency.md), so a 409 can mean that
  an earlier attempt with this key is still executing; once it finishes, the retry
  gets its answer replayed. A 409 that persists means "same key, other parameters"
  or a real conflict (ingest alias taken) and is raised. A 409 without a key is
  raised at once.
* every other 4xx fails at once.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Mapping

RETRYABLE_STATUSES = frozenset({408, 429})


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth retrying (409 aside: see :meth:`RetryPolicy.conflict_wait`)."""
    return status in RETRYABLE_STATUSES or status >= 500


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Read the server's requested wait from ``retry-after-ms`` or ``Retry-After``.

    :param headers: response headers (case-insensitive mapping, e.g. ``httpx.Headers``).
    :param now: current epoch seconds, for HTTP-date values (tests pass it).
    :return: seconds to wait, or ``None`` when the server asked nothing usable.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            pass
        else:
            if math.isfinite(value):
                return max(0.0, value)
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        return max(0.0, value) if math.isfinite(value) else None
    import email.utils

    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, parsed.timestamp() - current)


@dataclass
class RetryPolicy:
    """How the client retries a failed request.

    :param max_retries: retries of connection errors, timeouts, 408 and 5xx after the
        first attempt; 0 disables retrying altogether (429 and 409 included).
    :param initial_backoff: first backoff in seconds; doubles each retry.
    :param max_backoff: cap of one computed backoff, in seconds.
    :param max_retry_after: cap of a server-requested ``Retry-After`` wait, in seconds.
    :param max_total_wait: cap of all waits of one request together, in seconds; once
        the next wait would pass it the last error is raised. This is also the whole
        budget of 429s, which are retried for as long as it lasts.
    :param jitter: fraction (0..1) by which a computed backoff is randomly shortened,
        so that concurrent workers do not retry in lockstep.
    :param conflict_retries: retries of a 409 answered to a write that carries an
        Idempotency-Key (the key may be in use by a concurrent request).
    :param conflict_backoff: first wait before such a retry, in seconds; doubles each time.
    """

    max_retries: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    max_total_wait: float = 120.0
    jitter: float = 0.25
    conflict_retries: int = 5
    conflict_backoff: float = 0.1
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def _exponential(self, first: float, retry_number: int) -> float:
        computed = min(first * 2 ** max(0, retry_number - 1), self.max_backoff)
        return computed * (1.0 - self.jitter * self._random.random())

    def backoff(self, retry_number: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds to wait before retry number ``retry_number`` (1-based) of one kind of failure.

        The exponential backoff with jitter, or what the server asked
        (``retry-after-ms`` / ``Retry-After``, capped at ``max_retry_after``) when that
        is longer: never sooner than asked, and longer each time the server asks again.

        :param retry_number: 1 for the first retry, 2 for the second, ...
        :param headers: headers of the failed answer, when there was one.
        """
        computed = self._exponential(self.initial_backoff, retry_number)
        asked = retry_after_seconds(headers) if headers is not None else None
        if asked is None:
            return computed
        return max(min(asked, self.max_retry_after), computed)

    def conflict_wait(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` of a keyed write answered 409.

        :param retry_number: 1 for the first retry, 2 for the second, ...
        """
        return self._exponential(self.conflict_backoff, retry_number)


class RetryLog:
    """What the client logs about its retries, without flooding the task log.

    * 429s are counted, never logged one by one: the first one of a client is
      reported at once, then one line per ``interval`` while they keep coming:
      ``Metronome rate limit: N requests answered 429 in the last Xs; pacing at R
      requests/s``.
    * Other retries (5xx, 408, 409, timeouts, connection errors) get a line each, at
      most ``per_interval`` per ``interval``; the rest are counted and summed up.

    Lines are written when something happens (a request is answered or retried), so
    a count still pending when the client stops is written by :meth:`flush`.

    :param logger: where to log.
    :param interval: seconds between summary lines.
    :param per_interval: retry lines logged one by one per interval.
    :param clock: monotonic clock (tests pass a fake one).
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 15.0,
        per_interval: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.per_interval = per_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self.throttled_total = 0
        self._throttled = 0
        self._throttle_since = self._started
        self._throttle_line: float | None = None
        self._retry_window = self._started
        self._retry_lines = 0
        self._suppressed = 0

    def throttled(self, pacing: Callable[[], float | None]) -> None:
        """Count one 429; write the summary line when it is due.

        :param pacing: returns the client's current pace (requests/s), ``None`` when unpaced.
        """
        with self._lock:
            self.throttled_total += 1
            self._throttled += 1
            now = self.clock()
            if self._throttle_line is None:
                self._write_throttled(now, pacing)
            else:
                self._due(now, pacing)

    def retry(self, message: str, *args: object) -> None:
        """Log one retry of another kind, unless too many were logged this interval.

        :param message: ``%``-style format, as for :meth:`logging.Logger.info`.
        :param args: its arguments.
        """
        with self._lock:
            now = self.clock()
            if now - self._retry_window >= self.interval:
                self._write_suppressed(now)
            if self._retry_lines < self.per_interval:
                self._retry_lines += 1
                self.logger.info(message, *args)
            else:
                self._suppressed += 1

    def tick(self, pacing: Callable[[], float | None]) -> None:
        """Write summary lines that are due; cheap when there is nothing to write.

        :param pacing: as for :meth:`throttled`.
        """
        if not self._throttled and not self._suppressed:
            return
        with self._lock:
            self._due(self.clock(), pacing)

    def flush(self, pacing: Callable[[], float | None]) -> None:
        """Write every pending count now (when the client closes).

        :param pacing: as for :meth:`throttled`.
        """
        with self._lock:
            now = self.clock()
            if self._throttled:
                self._write_throttled(now, pacing)
            if self._suppressed:
                self._write_suppressed(now)

    def _due(self, now: float, pacing: Callable[[], float | None]) -> None:
        if self._throttled and now - self._throttle_since >= self.interval:
            self._write_throttled(now, pacing)
        if self._suppressed and now - self._retry_window >= self.interval:
            self._write_suppressed(now)

    def _write_throttled(self, now: float, pacing: Callable[[], float | None]) -> None:
        rate = pacing()
        how = f"pacing at {rate:.1f} requests/s" if rate is not None else "not pacing yet"
        count = self._throttled
        self.logger.info(
            "Metronome rate limit: %d request%s answered 429 in the last %.1fs; %s",
            count,
            "" if count == 1 else "s",
            max(now - self._throttle_since, 0.0),
            how,
        )
        self._throttled = 0
        self._throttle_since = now
        self._throttle_line = now

    def _write_suppressed(self, now: float) -> None:
        if self._suppressed:
            self.logger.info(
                "Metronome: %d more retries (5xx, timeouts, connection errors) in the last %.0fs "
                "were not logged one by one",
                self._suppressed,
                now - self._retry_window,
            )
        self._suppressed = 0
        self._retry_lines = 0
        self._retry_window = now
