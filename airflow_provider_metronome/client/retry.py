"""Retry policy of the Metronome client: what to retry and how long to wait.

Kept free of Airflow and of the SDK so it can be read and tested alone. It follows
``api-conventions.yaml``: connection errors, timeouts, 408, 429 and 5xx are retried
with exponential backoff and jitter; ``retry-after-ms`` / ``Retry-After`` are honoured;
every other 4xx fails at once. Unlike the SDK's own policy, 409 is *not* retried: in
this API it means "ingest alias taken" or "Idempotency-Key reused with another body",
neither of which a retry can fix.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

RETRYABLE_STATUSES = frozenset({408, 429})


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth retrying."""
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
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    import email.utils

    parsed = email.utils.parsedate_to_datetime(raw) if raw else None
    if parsed is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, parsed.timestamp() - current)


@dataclass
class RetryPolicy:
    """How the client retries a failed request.

    :param max_retries: retries after the first attempt (0 disables retrying).
    :param initial_backoff: first backoff in seconds; doubles each retry.
    :param max_backoff: cap of one computed backoff, in seconds.
    :param max_retry_after: cap of a server-requested ``Retry-After`` wait, in seconds.
    :param max_total_wait: cap of all waits of one request together, in seconds; once
        the next wait would pass it the last error is raised.
    :param jitter: fraction (0..1) by which a computed backoff is randomly shortened,
        so that concurrent workers do not retry in lockstep.
    """

    max_retries: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    max_total_wait: float = 120.0
    jitter: float = 0.25
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def backoff(self, retry_number: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds to wait before retry number ``retry_number`` (1-based).

        :param retry_number: 1 for the first retry, 2 for the second, ...
        :param headers: headers of the failed answer, when there was one.
        """
        if headers is not None:
            asked = retry_after_seconds(headers)
            if asked is not None:
                return min(asked, self.max_retry_after)
        computed = min(self.initial_backoff * 2 ** (retry_number - 1), self.max_backoff)
        return computed * (1.0 - self.jitter * self._random.random())
