"""Progress lines for long syncs: rows done, rate, ETA."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Logs at most every ``interval`` seconds.

    :param log: where to log.
    :param what: what is counted (e.g. ``"rows read"``).
    :param interval: seconds between lines.
    """

    def __init__(self, log: logging.Logger, what: str, *, interval: float = 30.0) -> None:
        self.log = log
        self.what = what
        self.interval = interval
        self.start = time.monotonic()
        self.last = self.start

    def update(self, done: int, total: int | None = None, *, force: bool = False) -> None:
        """Log a line if ``interval`` passed since the last one (or ``force``)."""
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        if total:
            left = max(total - done, 0)
            eta = _duration(left / rate) if rate > 0 else "unknown"
            self.log.info(
                "%s: %d of %d (%d%%), %.0f/s, ETA %s", self.what, done, total, 100 * done // total, rate, eta
            )
        else:
            self.log.info("%s: %d, %.0f/s", self.what, done, rate)


class LogBudget:
    """Log the first ``limit`` items of a kind one by one, then say once that only counting goes on.

    A sync of a million bad rows must not write a million log lines: the full list goes
    to the rejects file, the log keeps the first ones and the counts.

    :param log: where to log.
    :param what: what is logged (e.g. ``"rejections"``), for the closing line.
    :param limit: items logged one by one.
    :param level: the level of the closing line.
    """

    def __init__(self, log: logging.Logger, what: str, *, limit: int = 200, level: int = 20) -> None:
        self.log = log
        self.what = what
        self.limit = limit
        self.level = level
        self.seen = 0

    def allow(self) -> bool:
        """Count one item; whether it may still be logged on its own line."""
        self.seen += 1
        if self.seen == self.limit + 1:
            self.log.log(self.level, "More %s: only counting from here (see the report)", self.what)
        return self.seen <= self.limit
