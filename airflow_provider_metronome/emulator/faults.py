"""Deterministic fault injection and rate limiting for the emulator."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, fields
from typing import Any


class FaultSettingError(ValueError):
    """A fault setting that cannot be applied.

    :param field: the setting's name.
    :param message: what is wrong, naming the setting.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class FaultConfig:
    """What the emulator does wrong, on purpose.

    Probabilities are per API request (0..1) and drawn from one seeded generator, so
    a run with the same seed and the same request order sees the same faults.

    :param latency_ms: fixed latency added to every API request.
    :param jitter_ms: extra random latency, uniform in ``[0, jitter_ms]``.
    :param p_429: probability of a 429 answered with ``Retry-After``.
    :param p_500: probability of a 500 answered before the request executes.
    :param p_503: probability of a 503 answered before the request executes.
    :param p_reset: probability that the connection is reset without an answer.
    :param p_commit_500: probability, for writes, that the write is applied and the
        answer is nevertheless a 500 (cached under the Idempotency-Key like any
        executed answer): the case that makes naive retrying clients duplicate.
    :param retry_after_ms: the wait a fault 429 asks for.
    :param rate_limit: requests per second allowed by a token bucket (0 = unlimited).
    :param rate_burst: bucket size; 0 means one fifth of a second's worth (at least 1).
    :param seed: seed of the fault generator.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    p_429: float = 0.0
    p_500: float = 0.0
    p_503: float = 0.0
    p_reset: float = 0.0
    p_commit_500: float = 0.0
    retry_after_ms: int = 200
    rate_limit: float = 0.0
    rate_burst: float = 0.0
    seed: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update, checking names and ranges; all or nothing.

        :param changes: field names and new values.
        :raises FaultSettingError: naming the first bad setting; nothing is changed then.
        """
        known = {f.name for f in fields(self)}
        checked: dict[str, int | float] = {}
        for name, value in changes.items():
            if name not in known:
                raise FaultSettingError(
                    name, f"unknown fault setting {name!r} (known: {', '.join(sorted(known))})"
                )
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise FaultSettingError(name, f"fault setting {name!r} must be a number")
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an integer too large for a float
                finite = False
            if not finite:
                raise FaultSettingError(name, f"fault setting {name!r} must be a finite number")
            if name.startswith("p_") and not 0.0 <= value <= 1.0:
                raise FaultSettingError(name, f"fault setting {name!r} must be between 0 and 1")
            if value < 0:
                raise FaultSettingError(name, f"fault setting {name!r} must be >= 0")
            checked[name] = int(value) if name in ("seed", "retry_after_ms") else float(value)
        for name, number in checked.items():
            setattr(self, name, number)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` stored.

    :param rate: refill rate in tokens per second.
    :param burst: capacity.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self) -> float:
        """Take a token; return 0 on success or the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class FaultInjector:
    """Draws the faults of :class:`FaultConfig` in a reproducible order.

    :param config: the fault settings.
    """

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.reconfigure()

    def reconfigure(self) -> None:
        """Reseed the generator and rebuild the rate limiter from the config."""
        c = self.config
        self.rng = random.Random(c.seed)
        burst = c.rate_burst or max(1.0, c.rate_limit / 5.0)
        self.bucket = TokenBucket(c.rate_limit, burst) if c.rate_limit > 0 else None

    def rate_limited(self) -> float:
        """0 when the request may go on, else the seconds the client must wait."""
        return self.bucket.take() if self.bucket is not None else 0.0

    def latency(self) -> float:
        """Seconds of latency to add to this request."""
        c = self.config
        if not c.latency_ms and not c.jitter_ms:
            return 0.0
        return (c.latency_ms + (self.rng.random() * c.jitter_ms if c.jitter_ms else 0.0)) / 1000.0

    def pre_fault(self) -> str | None:
        """Draw a fault that stops the request before it executes: reset, 429, 500, 503 or none."""
        c = self.config
        if not (c.p_reset or c.p_429 or c.p_500 or c.p_503):
            return None
        draw = self.rng.random()
        for name, p in (("reset", c.p_reset), ("429", c.p_429), ("500", c.p_500), ("503", c.p_503)):
            if draw < p:
                return name
            draw -= p
        return None

    def commit_then_500(self) -> bool:
        """Whether an executed write should be answered with a 500 anyway."""
        return bool(self.config.p_commit_500) and self.rng.random() < self.config.p_commit_500

    @staticmethod
    def retry_after_headers(seconds: float) -> dict[str, str]:
        """``Retry-After`` (whole seconds, as HTTP requires) and the precise ``retry-after-ms``."""
        return {
            "retry-after": str(max(1, math.ceil(seconds))),
            "retry-after-ms": str(max(1, round(seconds * 1000))),
        }
