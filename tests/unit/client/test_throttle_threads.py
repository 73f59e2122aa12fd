"""``client/throttle.py`` under real thread contention: one pace for every thread, counters exact.

The limiter's clock is injected, so the pace is checked in the limiter's own time:
the threads are real and race for the lock, but what they are granted does not
depend on how the machine schedules them.
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
from typing import TYPE_CHECKING

import pytest

from airflow_provider_metronome.client.throttle import AdaptiveRateLimiter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

THREADS = 16


class Clock:
    """A monotonic fake clock, safe to read and move from many threads."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class TickingClock(Clock):
    """Moves forward ``step`` seconds each time it is read; remembers what each thread read last."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step
        self._seen = threading.local()

    def __call__(self) -> float:
        with self._lock:
            self._now += self.step
            now = self._now
        self._seen.now = now
        return now

    def last_read(self) -> float:
        """The time this thread's last read returned (the limiter's ``now`` in its last call)."""
        return float(self._seen.now)


@pytest.fixture(autouse=True)
def _switch_threads_often() -> Iterator[None]:
    """Let the interpreter switch threads every microsecond, so races have their chance."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def paced(clock: Clock, rate: float = 10.0) -> AdaptiveRateLimiter:
    """A limiter that has learned a pace of about ``0.85 * rate`` from answers and 429s, then cut it again.

    Two cuts: it is no longer probing, so while its pace holds requests back it grows
    by ``increase`` (5 %) of itself per second at most.
    """
    limiter = AdaptiveRateLimiter(clock=clock)
    limiter.on_throttled()
    while limiter.rate is None:
        clock.advance(1.0 / rate)
        limiter.on_success()
        limiter.on_throttled()
    clock.advance(3.0)  # past the hold: the next 429 is news
    for _ in range(int(2 * rate)):
        clock.advance(1.0 / rate)
        limiter.on_success()
    limiter.on_throttled()
    assert limiter.cuts == 2
    assert limiter.rate is not None
    return limiter


def in_threads(work: Callable[[int], None], threads: int = THREADS) -> None:
    """Run ``work(i)`` in ``threads`` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            work(i)
        except BaseException as err:
            errors.append(err)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in pool), "a thread hung"
    if errors:
        raise errors[0]


def test_concurrent_reservations_get_distinct_slots_exactly_one_pace_apart() -> None:
    """8 000 reservations from 16 threads at one instant: slot k is at ``k / rate``, none shared or skipped."""
    clock = Clock()
    limiter = paced(clock)
    rate = limiter.rate
    assert rate is not None
    clock.advance(10.0)  # idle: the first slot is now
    start = clock()
    per_thread = 500
    slots: list[list[float]] = [[] for _ in range(THREADS)]

    def reserve(i: int) -> None:
        for _ in range(per_thread):
            slots[i].append(clock() + limiter.reserve())

    in_threads(reserve)
    granted = sorted(s for thread_slots in slots for s in thread_slots)
    assert len(granted) == THREADS * per_thread
    assert granted == pytest.approx([start + k / rate for k in range(len(granted))], abs=1e-6)
    assert limiter.rate == rate, "the clock did not move: the pace did not change"


def test_the_granted_rate_never_exceeds_the_pace_plus_its_documented_growth() -> None:
    """Threads reserving while time passes: no second holds more slots than the pace, grown 5 %/s, allows.

    Each reservation advances the clock by 1 ms, so ``reserve`` is called about 1000
    times a second while the pace is near 9/s: the pace holds requests back all
    along and grows by ``increase`` of itself per second, and no more.
    """
    clock = TickingClock(step=0.001)
    limiter = paced(clock)
    first_rate = limiter.rate
    assert first_rate is not None
    wait = limiter.reserve()
    start = clock.last_read() + wait  # the next free slot
    granted: list[list[float]] = [[] for _ in range(THREADS)]

    def reserve(i: int) -> None:
        for _ in range(500):
            wait = limiter.reserve()
            granted[i].append(clock.last_read() + wait)

    in_threads(reserve)
    slots = sorted([start, *(s for thread_slots in granted for s in thread_slots)])
    elapsed_clock = clock() - start
    # Growth compounds at most like exp(increase * t) over the time the clock moved.
    ceiling = first_rate * math.exp(limiter.increase * elapsed_clock)
    last_rate = limiter.current_rate()
    assert last_rate is not None
    assert first_rate < last_rate <= ceiling * 1.0001, "the pace grew, within its documented bound"
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= 1.0 / ceiling - 1e-9, "no two slots closer than the fastest pace allowed"
    for i, s in enumerate(slots):  # every window of one second, starting at a slot
        within = sum(1 for t in slots[i : i + int(ceiling) + 3] if t < s + 1.0)
        assert within <= math.floor(ceiling) + 1, f"{within} slots in the second after {s - start:.3f}s"


def test_counters_stay_exact_under_concurrent_answers_and_429s() -> None:
    """16 threads mixing reservations, answers and 429s: no error, every 429 counted, the pace sane."""
    clock = TickingClock(step=0.0005)
    limiter = AdaptiveRateLimiter(clock=clock)
    rounds = 300
    throttled_sent = [0] * THREADS

    def mixed(i: int) -> None:
        for n in range(rounds):
            limiter.reserve()
            if (n + i) % 7 == 0:
                limiter.on_throttled(0.01 if n % 2 else None)
                throttled_sent[i] += 1
            else:
                limiter.on_success()
            limiter.current_rate()

    in_threads(mixed)
    assert limiter.throttled == sum(throttled_sent)
    assert 1 <= limiter.cuts <= limiter.throttled, "a pace was learned, and cut no more often than 429s came"
    rate = limiter.current_rate()
    assert rate is not None
    assert math.isfinite(rate)
    assert rate >= limiter.min_rate
    assert rate >= limiter.floor * limiter.peak - 1e-9, "never below its floor of the best throughput seen"
    # The clock moves 0.5 ms per read, so no window can have seen answers faster than 2000/s.
    assert 0 < limiter.peak <= 2000.0
