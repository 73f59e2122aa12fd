"""The adaptive rate limiter and the retry log, on a fake clock."""

from __future__ import annotations

import logging
import random
import threading

import pytest

from airflow_provider_metronome.client.retry import RetryLog
from airflow_provider_metronome.client.throttle import AdaptiveRateLimiter


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run(limiter: AdaptiveRateLimiter, clock: Clock, seconds: float, server_rate: float) -> tuple[int, int]:
    """One client that always has a request to send, against a token bucket (burst 2).

    :return: ``(answered, refused)``.
    """
    tokens = 2.0
    answered = refused = 0
    end = clock.now + seconds
    step = 0.001
    last = clock.now
    while clock.now < end:
        wait = limiter.reserve()
        if wait > 0:
            clock.advance(wait)
        tokens = min(2.0, tokens + (clock.now - last) * server_rate)
        last = clock.now
        if tokens >= 1.0:
            tokens -= 1.0
            limiter.on_success()
            answered += 1
        else:
            limiter.on_throttled((1.0 - tokens) / server_rate)
            refused += 1
        clock.advance(step)
    return answered, refused


def learned(clock: Clock, rate: float = 10.0) -> AdaptiveRateLimiter:
    """A limiter whose first 429 came after 5 quiet seconds, then 1.5 s at ``rate`` answers/s."""
    limiter = AdaptiveRateLimiter(clock=clock)
    for _ in range(5):  # a slow start: the client asked for little
        limiter.reserve()
        limiter.on_success()
        clock.advance(1.0)
    limiter.on_throttled()
    assert limiter.rate is None, "no answers since the first 429 yet: no rate to tell"
    while limiter.rate is None:  # refused now and then, answered at `rate`
        clock.advance(1.0 / rate)
        limiter.on_success()
        limiter.on_throttled()
    return limiter


def test_unlimited_until_the_first_429() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(clock=clock)
    for _ in range(1000):
        assert limiter.reserve() == 0.0
        limiter.on_success()
        clock.advance(0.001)
    assert limiter.rate is None
    assert limiter.current_rate() is None


def test_a_429_with_too_few_answers_does_not_pace_yet() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(clock=clock)
    limiter.on_success()
    limiter.on_success()
    limiter.on_throttled()
    clock.advance(0.1)
    limiter.on_throttled()
    assert limiter.rate is None
    assert limiter.reserve() == 0.0
    assert limiter.throttled == 2


def test_the_pace_is_learned_from_the_answers_since_the_first_429() -> None:
    clock = Clock()
    limiter = learned(clock, rate=10.0)
    # 0.85 x the 10 answers/s seen while refused; the quiet seconds before do not count.
    assert limiter.rate == pytest.approx(8.5, rel=0.1)


def test_every_thread_shares_the_pace() -> None:
    clock = Clock()
    limiter = learned(clock)
    rate = limiter.rate
    assert rate is not None
    clock.advance(10.0)  # idle: the next request goes at once
    waits: list[float] = []
    lock = threading.Lock()

    def request() -> None:
        wait = limiter.reserve()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=request) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == pytest.approx([k / rate for k in range(12)])


def test_retry_after_holds_every_request_of_the_client() -> None:
    clock = Clock()
    limiter = learned(clock)
    clock.advance(10.0)
    limiter.on_throttled(retry_after=2.0)
    assert limiter.reserve() >= 2.0


def test_429s_of_requests_paced_before_a_cut_do_not_cut_again() -> None:
    clock = Clock()
    limiter = learned(clock)
    first = limiter.rate
    for _ in range(10):  # the rest of the burst
        clock.advance(0.02)
        limiter.on_throttled()
    assert limiter.rate == first
    assert limiter.cuts == 1
    clock.advance(1.0)
    for _ in range(20):
        clock.advance(0.1)
        limiter.on_success()
    limiter.on_throttled()
    assert limiter.cuts == 2
    assert limiter.rate is not None
    assert first is not None
    assert limiter.rate < first


def test_the_pace_grows_only_while_it_holds_requests_back() -> None:
    clock = Clock()
    limiter = learned(clock)
    limiter.on_throttled()  # slow start ends
    clock.advance(1.0)
    for _ in range(20):
        clock.advance(0.1)
        limiter.on_success()
    limiter.on_throttled()
    rate = limiter.rate
    assert rate is not None
    clock.advance(30.0)  # nobody asked: nothing learned
    assert limiter.current_rate() == rate
    for _ in range(40):  # a queue of requests for 4 s or so
        clock.advance(limiter.reserve())
        limiter.on_success()
    grown = limiter.current_rate()
    assert grown is not None
    assert grown > rate * 1.1


def test_a_paced_client_stays_just_under_the_servers_limit() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(clock=clock)
    run(limiter, clock, 10.0, server_rate=10.0)  # learn
    answered, refused = run(limiter, clock, 60.0, server_rate=10.0)
    assert answered / 60.0 > 8.5
    assert refused < 60, "a few 429s a minute, not one per request"


def test_random_429s_do_not_cut_the_pace_below_the_floor() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(clock=clock)
    rng = random.Random(5)
    for _ in range(300):  # 3 s at 100 requests/s: the best throughput seen
        limiter.on_success()
        clock.advance(0.01)
    lowest = float("inf")
    for _ in range(3000):  # 10 % of answers are 429s, whatever the pace
        clock.advance(max(limiter.reserve(), 0.01))
        if rng.random() < 0.1:
            limiter.on_throttled()
        else:
            limiter.on_success()
        if limiter.rate is not None:
            lowest = min(lowest, limiter.rate)
    assert limiter.peak == pytest.approx(100, rel=0.05)
    assert lowest >= 0.5 * limiter.peak


def test_a_slow_limit_is_learned_from_fewer_answers() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(clock=clock, min_rate=0.1)
    limiter.on_throttled()
    while limiter.rate is None:  # one answer a second
        clock.advance(1.0)
        limiter.on_success()
        limiter.on_throttled()
    assert limiter.rate == pytest.approx(0.85, rel=0.15)


# -- the retry log ---------------------------------------------------------------------------------


def test_429s_are_summed_up_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    retry_log = RetryLog(logging.getLogger("test.retry"), interval=15.0, clock=clock)
    for _ in range(450):  # 10 a second for 45 s
        clock.advance(0.1)
        retry_log.throttled(lambda: 8.5)
        retry_log.tick(lambda: 8.5)
    retry_log.flush(lambda: 8.5)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (
        "Metronome rate limit: 1 request answered 429 in the last 0.1s; pacing at 8.5 requests/s"
    )
    assert len(lines) == 4, "the first 429 at once, then one line per 15 s"
    assert all(line.startswith("Metronome rate limit: ") for line in lines)
    counts = [int(line.split()[3]) for line in lines]
    assert sum(counts) == 450
    assert retry_log.throttled_total == 450


def test_a_pending_count_is_written_at_the_next_answer_once_due(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    retry_log = RetryLog(logging.getLogger("test.retry"), interval=15.0, clock=clock)
    retry_log.throttled(lambda: None)
    for _ in range(3):
        retry_log.throttled(lambda: None)
    clock.advance(14.0)
    retry_log.tick(lambda: 9.0)
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().endswith("; not pacing yet")
    clock.advance(1.0)
    retry_log.tick(lambda: 9.0)
    assert [r.getMessage() for r in caplog.records][1] == (
        "Metronome rate limit: 3 requests answered 429 in the last 15.0s; pacing at 9.0 requests/s"
    )
    clock.advance(60.0)
    retry_log.tick(lambda: 9.0)
    retry_log.flush(lambda: 9.0)
    assert len(caplog.records) == 2, "nothing pending, nothing written"


def test_other_retries_are_logged_one_by_one_up_to_a_cap(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    retry_log = RetryLog(logging.getLogger("test.retry"), interval=15.0, per_interval=10, clock=clock)
    for i in range(25):
        clock.advance(0.04)
        retry_log.retry("Metronome GET /v1/customers: HTTP 503, retry %d/5 in %.2fs", 1, i / 100)
    assert len(caplog.records) == 10
    clock.advance(15.0)
    retry_log.tick(lambda: None)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 11
    assert messages[-1].startswith(
        "Metronome: 15 more retries (5xx, timeouts, connection errors) in the last "
    )
    retry_log.retry("Metronome GET /v1/customers: HTTP 503, retry %d/5 in %.2fs", 1, 0.5)
    assert len(caplog.records) == 12, "a new interval logs again"
