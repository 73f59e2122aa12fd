"""The request executor: every typed call runs through :meth:`RequestExecutor.request`.

It owns what the SDK's own retries cannot do (see :mod:`.retry`): a write keeps its
Idempotency-Key across retries of a lost answer, switches to a fresh key after a 5xx
(after asking the caller to check what was created), retries 429s for as long as the
request's wait budget lasts while the whole client slows down (:mod:`.throttle`), and
retries a 409 only briefly and only with the same key. It counts every request sent
(:attr:`RequestExecutor.calls`), also by endpoint (:attr:`RequestExecutor.calls_by_endpoint`,
keyed ``"GET /v1/customers/{customer_id}"``: an id in a path counts under its
template, :func:`endpoint_template`) and raises only the provider's exceptions,
scrubbed (:mod:`.errors`).

All of its state belongs to the instance: one executor per client, shared by that
client's threads.
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_metronome.client.idempotency import retry_key
from airflow_provider_metronome.client.responses import MalformedResponse
from airflow_provider_metronome.client.retry import RetryLog, is_retryable_status, retry_after_seconds
from airflow_provider_metronome.client.settings import log
from airflow_provider_metronome.client.throttle import AdaptiveRateLimiter
from airflow_provider_metronome.exceptions import MetronomeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_metronome.client.errors import ErrorMapper
    from airflow_provider_metronome.client.retry import RetryPolicy

T = TypeVar("T")

# Collections whose next path segment is a resource id, and the name of that id
# (https://docs.metronome.com/api-reference: /v1/customers/{customer_id}/...).
_ID_AFTER = {
    "customers": "customer_id",
    "plans": "plan_id",
    "invoices": "invoice_id",
    "billable-metrics": "billable_metric_id",
}
# Words that follow such a collection and are not an id (POST /v1/customers/archive).
_NOT_IDS = frozenset({"archive"})
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Paths already seen that hold no id (they are their own template): a dict lookup per call.
_STATIC: dict[str, str] = {}


def endpoint_template(path: str) -> str:
    """``path`` with its resource ids replaced by their names: the endpoint it calls.

    ``/v1/customers/3f2c.../setIngestAliases`` gives
    ``/v1/customers/{customer_id}/setIngestAliases``; a UUID anywhere else gives ``{id}``;
    a query string is dropped.

    :param path: the API path of a request.
    """
    known = _STATIC.get(path)
    if known is not None:
        return known
    bare = path.split("?", 1)[0]
    segments = bare.split("/")
    for i in range(1, len(segments)):
        segment = segments[i]
        if not segment:
            continue
        name = _ID_AFTER.get(segments[i - 1])
        if name is not None and segment not in _NOT_IDS and not segment.startswith("{"):
            segments[i] = f"{{{name}}}"
        elif _UUID.fullmatch(segment):
            segments[i] = "{id}"
    template = "/".join(segments)
    if template == path and len(_STATIC) < 1024:
        _STATIC[path] = path
    return template


class RequestExecutor:
    """Runs requests under a retry policy, paced, counted, with errors mapped and scrubbed.

    :param policy: the retry policy.
    :param errors: the client's error mapper (it knows the client's secrets).
    """

    def __init__(self, policy: RetryPolicy, errors: ErrorMapper) -> None:
        self.policy = policy
        self.errors = errors
        # One pace and one retry log for the whole client: every thread shares them.
        self.limiter = AdaptiveRateLimiter()
        self.retry_log = RetryLog(log)
        self._calls = 0
        self._by_endpoint: dict[str, int] = {}
        self._calls_lock = threading.Lock()

    @property
    def calls(self) -> int:
        """HTTP requests sent so far (every retry counts)."""
        return self._calls

    @property
    def calls_by_endpoint(self) -> dict[str, int]:
        """HTTP requests sent so far by endpoint, e.g. ``{"GET /v1/customers": 12}`` (a copy).

        Every retry counts; an id in a path counts under its template
        (``"POST /v1/customers/{customer_id}/setIngestAliases"``, see :func:`endpoint_template`).
        The values add up to :attr:`calls`.
        """
        with self._calls_lock:
            return dict(self._by_endpoint)

    def count_call(self, method: str = "", path: str = "") -> None:
        """Count one request sent (also by callers that send outside :meth:`request`).

        :param method: its HTTP method.
        :param path: its API path (ids are grouped by template).
        """
        key = f"{method} {endpoint_template(path)}" if method or path else "unknown"
        self._count(key)

    def _count(self, key: str) -> None:
        with self._calls_lock:
            self._calls += 1
            self._by_endpoint[key] = self._by_endpoint.get(key, 0) + 1

    def flush(self) -> None:
        """Log the retry counts not yet logged."""
        self.retry_log.flush(self.limiter.current_rate)

    def request(
        self,
        method: str,
        path: str,
        send: Callable[[dict[str, str]], T],
        *,
        idempotency_key: str | None = None,
        verify: Callable[[], T | None] | None = None,
        max_retries: int | None = None,
        endpoint: str | None = None,
    ) -> T:
        """Run ``send`` under the retry policy.

        :param method: HTTP method, for messages.
        :param path: API path, for messages.
        :param send: performs the request; receives the extra headers to send.
        :param idempotency_key: key for a write. Kept across retries of a lost answer
            (connection error, timeout, 408, 429) and of a 409 (the key may be in use
            by a concurrent request); replaced after a 5xx.
        :param verify: for writes; called after a 5xx to check whether the write was
            applied anyway. A non-``None`` result is returned as the write's result.
        :param max_retries: overrides the policy's retry count.
        :param endpoint: the key the request counts under in :attr:`calls_by_endpoint`
            (``"GET /v1/customers/{customer_id}"``); by default ``method`` and the template
            of ``path`` (:func:`endpoint_template`).
        :raises MetronomeError: the request failed for good (its subclass says how).
        """
        from metronome import APIConnectionError, APIStatusError

        attempts = _Attempts(
            self, method, path, max_retries, keyed=idempotency_key is not None, endpoint=endpoint
        )
        key = idempotency_key
        while True:
            delay = attempts.start()
            if delay:
                time.sleep(delay)
            headers = {"Idempotency-Key": key} if key else {}
            failure: MetronomeError | None = None
            try:
                result = send(headers)
            except MalformedResponse as bad:
                attempts.succeeded()  # answered: the pace is not at fault
                failure = self.errors.response_error(bad, method, path, attempts.attempt)
            except (APIStatusError, APIConnectionError) as err:
                try:
                    wait, status = attempts.failed(err)
                except MetronomeError as final:
                    failure = final
                else:
                    if status is not None and status >= 500 and key is not None:
                        # The answer is cached under this key and the write may have been
                        # applied: "verify that resource was not partially created and retry
                        # using a different key"
                        # (https://docs.metronome.com/api-reference/status-codes.md).
                        if verify is not None:
                            applied = verify()
                            if applied is not None:
                                log.info("%s %s answered %s but the write was applied", method, path, status)
                                return applied
                        key = retry_key(idempotency_key or key)
                    time.sleep(wait)
                    continue
            if failure is not None:
                # Raised outside the handler, with no link to the SDK's exception: its
                # text (and a body that may echo the request) is not ours to print.
                failure.__context__ = failure.__cause__ = None
                raise failure
            attempts.succeeded()
            return result


class _Attempts:
    """The attempts of one request: pacing, when to give up, how long to wait, what to log.

    Each kind of failure has its own count: connection errors, timeouts, 408 and 5xx
    share ``max_retries``; 429s are retried for as long as the wait budget
    (``max_total_wait``) lasts; a 409 to a keyed write gets ``conflict_retries``.
    Every retry wait of the request counts against that budget (pacing does not:
    it is the client taking turns, not the request failing).
    """

    def __init__(
        self,
        executor: RequestExecutor,
        method: str,
        path: str,
        max_retries: int | None = None,
        *,
        keyed: bool = False,
        endpoint: str | None = None,
    ) -> None:
        self.executor = executor
        self.errors = executor.errors
        self.method = method
        self.path = path
        self.endpoint = endpoint or f"{method} {endpoint_template(path)}"
        self.policy = executor.policy
        self.retries = self.policy.max_retries if max_retries is None else max_retries
        self.keyed = keyed
        self.limiter = executor.limiter
        self.log = executor.retry_log
        self.attempt = 0
        self.errors_seen = 0
        self.throttled = 0
        self.conflicts = 0
        self.waited = 0.0

    def start(self) -> float:
        """Count an attempt; return how long to wait first (client-side pacing)."""
        self.attempt += 1
        self.executor._count(self.endpoint)
        return self.limiter.reserve()

    def succeeded(self) -> None:
        self.limiter.on_success()
        self.log.tick(self.limiter.current_rate)

    def failed(self, err: Exception) -> tuple[float, int | None]:
        """Decide after a failed attempt: ``(seconds to wait, HTTP status or None)``, or raise.

        :param err: the SDK's ``APIStatusError`` or ``APIConnectionError``.
        """
        from metronome import APIStatusError

        last: Exception
        status: int | None = None
        headers: Any = None
        if isinstance(err, APIStatusError):
            status = int(err.status_code)
            headers = err.response.headers
            last = self.errors.api_error(err, self.method, self.path, self.attempt)
            if status == 429:
                # Counted for the whole client, logged as a periodic summary, retried
                # while the budget lasts: "wait and try again later"
                # (https://docs.metronome.com/api-reference/status-codes.md).
                self.throttled += 1
                self.limiter.on_throttled(retry_after_seconds(headers))
                self.log.throttled(self.limiter.current_rate)
                if self.retries <= 0:
                    raise last from None
                wait = self.policy.backoff(self.throttled, headers)
                self._spend(wait, last)
                return wait, status
            if status == 409 and self.keyed and self.retries > 0:
                # The key may be in use by a concurrent request: a key applies once the
                # request "begins executing (passes validation and doesn't conflict with
                # another concurrent request)"
                # (https://docs.metronome.com/api-reference/idempotency.md). Same key,
                # shortly: once that request is done its answer is replayed.
                self.conflicts += 1
                if self.conflicts > self.policy.conflict_retries:
                    raise last from None
                wait = self.policy.conflict_wait(self.conflicts)
                self._spend(wait, last)
                self._log_retry(f"HTTP 409 ({self._message(last)})", self.conflicts,
                                self.policy.conflict_retries, wait)  # fmt: skip
                return wait, status
            if not is_retryable_status(status):
                raise last from None
            reason = f"HTTP {status}"
        else:
            last = self.errors.connection_error(err, self.method, self.path, self.attempt)
            reason = last.reason
        self.errors_seen += 1
        if self.errors_seen > self.retries:
            raise last from None
        wait = self.policy.backoff(self.errors_seen, headers)
        self._spend(wait, last)
        self._log_retry(reason, self.errors_seen, self.retries, wait)
        return wait, status

    def _spend(self, wait: float, last: Exception) -> None:
        if self.waited + wait > self.policy.max_total_wait:
            raise last from None
        self.waited += wait

    @staticmethod
    def _message(err: Exception) -> str:
        text = getattr(err, "api_message", "") or str(err)
        return text if len(text) <= 120 else f"{text[:117]}..."

    def _log_retry(self, reason: str, number: int, of: int, wait: float) -> None:
        scrub = self.errors.scrub
        self.log.retry(
            "Metronome %s %s: %s, retry %d/%d in %.2fs",
            self.method, scrub(self.path), scrub(reason), number, of, wait,
        )  # fmt: skip
