"""Typed Metronome operations on the official SDK, with the provider's retry policy.

:class:`MetronomeApi` holds every call the provider makes. It is a mixin: the
Airflow hook (:class:`~airflow_provider_metronome.hooks.metronome.MetronomeHook`)
supplies its settings from an Airflow connection, and :class:`MetronomeClient`
supplies them from arguments, so the sync engine, the benchmarks and the tests can
use the same code without Airflow.

The SDK client is built with its own retries switched off: this module owns the
policy (see :mod:`.retry`) so that a write keeps its Idempotency-Key across
retries, switches to a fresh key after a 5xx (after asking the caller to check
what was created), retries 429s for as long as the request's wait budget lasts while
the whole client slows down (:mod:`.throttle`), and retries a 409 only briefly and
only with the same key.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_metronome.client.idempotency import retry_key
from airflow_provider_metronome.client.retry import (
    RetryLog,
    RetryPolicy,
    is_retryable_status,
    retry_after_seconds,
)
from airflow_provider_metronome.client.throttle import AdaptiveRateLimiter
from airflow_provider_metronome.exceptions import (
    MetronomeAPIError,
    MetronomeConfigError,
    MetronomeConnectionError,
    error_class_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from metronome import Metronome

log = logging.getLogger("airflow_provider_metronome.client")

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.metronome.com"
DEFAULT_TIMEOUT = 60.0
# Metronome's documented page-size cap for GET list endpoints.
MAX_PAGE_SIZE = 100


def normalize_base_url(host: str | None) -> str:
    """Turn a connection ``host`` into a base URL.

    A full URL is kept as given; a bare host gets ``https://``; nothing gives the
    production API.

    :param host: the connection's host field.
    """
    value = (host or "").strip().rstrip("/")
    if not value:
        return DEFAULT_BASE_URL
    if "://" not in value:
        value = f"https://{value}"
    scheme = value.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise MetronomeConfigError(f"Base URL must use http or https, got {scheme!r}")
    return value


def _no_cookies() -> Any:
    """A cookie jar that keeps nothing (built lazily: http.cookiejar imports urllib.request)."""
    import http.cookiejar

    class _NoCookies(http.cookiejar.CookieJar):
        def extract_cookies(self, response: Any, request: Any) -> None:
            return None

        def add_cookie_header(self, request: Any) -> None:
            return None

    return _NoCookies()


def _json(response: Any) -> Any:
    # The SDK's raw response: the official client made the request and raised on error
    # statuses; reading the JSON directly skips building pydantic models only to dump
    # them again (about 15% of the client's CPU per call).
    return response.http_response.json()


def _transport_reason(err: BaseException) -> str:
    # The SDK's own text is just "Connection error."; the httpx cause says why.
    cause = err.__cause__ or err.__context__
    detail = f"{type(cause).__name__}: {cause}" if cause is not None and str(cause) else ""
    return f"{type(err).__name__} ({detail})" if detail else type(err).__name__


def _user_agent() -> str:
    from airflow_provider_metronome import __version__

    return f"airflow-provider-metronome/{__version__}"


@dataclass
class ClientSettings:
    """Everything needed to build a configured SDK client.

    :param base_url: Metronome base URL.
    :param token: the API token (kept out of ``repr``).
    :param timeout: per-request timeout in seconds.
    :param retry: the retry policy.
    :param max_connections: size of the HTTP connection pool.
    :param source: what to name in error messages (e.g. ``connection 'metronome_default'``).
    """

    base_url: str
    token: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_connections: int = 64
    source: str = "the Metronome client"


class MetronomeApi:
    """Typed Metronome operations. Subclasses implement :meth:`_client_settings`."""

    _settings_cache: ClientSettings | None = None
    _sdk_cache: Metronome | None = None
    _raw_sdk_cache: Metronome | None = None
    _build_lock = threading.Lock()
    _calls = 0
    _calls_lock = threading.Lock()
    _rate_limiter: AdaptiveRateLimiter | None = None
    _retry_log: RetryLog | None = None

    @property
    def api_calls(self) -> int:
        """HTTP requests sent so far by the typed methods (every retry counts)."""
        return self._calls

    def _count_call(self) -> None:
        with self._calls_lock:
            self._calls += 1

    # -- configuration --------------------------------------------------------------

    def _client_settings(self) -> ClientSettings:
        raise NotImplementedError

    @property
    def settings(self) -> ClientSettings:
        """The resolved settings (resolved once, on first use)."""
        if self._settings_cache is None:
            self._settings_cache = self._client_settings()
        return self._settings_cache

    def _build_sdk(self, max_retries: int) -> Metronome:
        import httpx
        from metronome import Metronome

        s = self.settings
        if not s.token:
            raise MetronomeConfigError(f"No API token: set the password of {s.source}")
        http_client = httpx.Client(
            # Metronome authenticates with a bearer token and sets no cookies; httpx's
            # per-response cookie bookkeeping costs ~10% of the client's CPU per call.
            cookies=_no_cookies(),
            timeout=httpx.Timeout(s.timeout, connect=min(5.0, s.timeout)),
            limits=httpx.Limits(
                max_connections=s.max_connections, max_keepalive_connections=s.max_connections
            ),
            follow_redirects=True,
        )
        return Metronome(
            bearer_token=s.token,
            base_url=s.base_url,
            timeout=s.timeout,
            max_retries=max_retries,
            default_headers={"User-Agent": _user_agent()},
            http_client=http_client,
        )

    def get_conn(self) -> Metronome:
        """Return the official SDK client (``metronome.Metronome``) for this connection.

        It is configured with the base URL, the token, the timeout, this package's
        ``User-Agent`` and the SDK's own retries (``max_retries`` of the connection),
        for code that wants to call endpoints this provider does not wrap.
        """
        with self._build_lock:
            if self._sdk_cache is None:
                self._sdk_cache = self._build_sdk(self.settings.retry.max_retries)
            return self._sdk_cache

    def _sdk(self) -> Metronome:
        # The typed methods run their own retry loop, so their client retries nothing.
        with self._build_lock:
            if self._raw_sdk_cache is None:
                self._raw_sdk_cache = self._build_sdk(0)
            return self._raw_sdk_cache

    def close(self) -> None:
        """Close the HTTP connection pools; log the retry counts not yet logged."""
        if self._retry_log is not None and self._rate_limiter is not None:
            self._retry_log.flush(self._rate_limiter.current_rate)
        for client in (self._sdk_cache, self._raw_sdk_cache):
            if client is not None:
                client.close()
        self._sdk_cache = self._raw_sdk_cache = None

    # -- the retry loop ---------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        token = self._settings_cache.token if self._settings_cache else ""
        return text.replace(token, "***") if token and len(token) >= 4 else text

    @staticmethod
    def _api_message(err: Any) -> str:
        """Metronome's ``message`` of an SDK ``APIStatusError`` (or the reason phrase)."""
        body = getattr(err, "body", None)
        message = ""
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]
        elif isinstance(body, str) and body:
            message = body[:500]
        return message or err.response.reason_phrase or "no message"

    def _api_error(self, err: Any, method: str, path: str, attempts: int) -> MetronomeAPIError:
        status = int(err.status_code)
        message = self._api_message(err)
        if status in (401, 403):
            message = f"{message} — check the API token in {self.settings.source}"
        request_id = err.response.headers.get("x-request-id")
        return error_class_for(status)(
            status,
            self._scrub(message),
            method=method,
            path=path,
            request_id=request_id,
            attempts=attempts,
        )

    def _limiter(self) -> tuple[AdaptiveRateLimiter, RetryLog]:
        # One pace and one retry log for the whole client: every thread shares them.
        if self._rate_limiter is None or self._retry_log is None:
            with self._build_lock:
                if self._retry_log is None:
                    self._retry_log = RetryLog(log)
                if self._rate_limiter is None:
                    self._rate_limiter = AdaptiveRateLimiter()
        return self._rate_limiter, self._retry_log

    def _request(
        self,
        method: str,
        path: str,
        send: Callable[[dict[str, str]], T],
        *,
        idempotency_key: str | None = None,
        verify: Callable[[], T | None] | None = None,
        max_retries: int | None = None,
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
        :param max_retries: overrides the policy's retry count (``test_connection`` uses 0).
        """
        from metronome import APIConnectionError, APIStatusError

        attempts = _Attempts(self, method, path, max_retries, keyed=idempotency_key is not None)
        key = idempotency_key
        while True:
            delay = attempts.start()
            if delay:
                time.sleep(delay)
            headers = {"Idempotency-Key": key} if key else {}
            try:
                result = send(headers)
            except (APIStatusError, APIConnectionError) as err:
                wait, status = attempts.failed(err)
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
            attempts.succeeded()
            return result

    # -- customer billing provider configurations -----------------------------------

    def set_billing_provider_configurations(
        self,
        configurations: Sequence[dict[str, Any]],
        *,
        idempotency_key: str | None = None,
        verify: Callable[[], list[dict[str, Any]] | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Create billing provider configurations (``POST /v1/setCustomerBillingProviderConfigurations``).

        This endpoint creates; it does not upsert. Pass an ``idempotency_key`` so a
        retried request cannot create twice.

        :param configurations: items of ``CustomerBillingProviderConfigurationInput``.
        :param idempotency_key: key sent as ``Idempotency-Key``.
        :param verify: called after a 5xx; returns the configurations if they exist.
        :return: the created configurations, in request order.
        """
        sdk = self._sdk()
        data = list(configurations)

        def send(headers: dict[str, str]) -> list[dict[str, Any]]:
            resp = sdk.v1.customers.with_raw_response.set_billing_configurations(
                data=data,  # type: ignore[arg-type]
                extra_headers=headers,
            )
            return _json(resp)["data"]

        return self._request(
            "POST",
            "/v1/setCustomerBillingProviderConfigurations",
            send,
            idempotency_key=idempotency_key,
            verify=verify,
        )

    def get_billing_provider_configurations(
        self, customer_id: str, *, include_archived: bool = False
    ) -> list[dict[str, Any]]:
        """A customer's configurations (``POST /v1/getCustomerBillingProviderConfigurations``).

        :param customer_id: Metronome customer id.
        :param include_archived: include archived configurations.
        """
        sdk = self._sdk()

        def send(headers: dict[str, str]) -> list[dict[str, Any]]:
            resp = sdk.v1.customers.with_raw_response.retrieve_billing_configurations(
                customer_id=customer_id, include_archived=include_archived, extra_headers=headers
            )
            return _json(resp)["data"]

        return self._request("POST", "/v1/getCustomerBillingProviderConfigurations", send)

    def archive_billing_provider_configurations(
        self,
        customer_id: str,
        configuration_ids: Sequence[str],
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Archive configurations of one customer (``POST /v1/archiveCustomerBillingProviderConfigurations``).

        :param customer_id: the customer the configurations belong to.
        :param configuration_ids: ids to archive (all-or-nothing).
        :param idempotency_key: key sent as ``Idempotency-Key``.
        """
        sdk = self._sdk()
        ids = list(configuration_ids)

        def send(headers: dict[str, str]) -> dict[str, Any]:
            resp = sdk.v1.customers.with_raw_response.archive_billing_configurations(
                customer_billing_provider_configuration_ids=ids,
                customer_id=customer_id,
                extra_headers=headers,
            )
            return _json(resp)["data"]

        def verify() -> dict[str, Any] | None:
            current = self.get_billing_provider_configurations(customer_id, include_archived=True)
            archived = {c["id"] for c in current if c.get("archived_at")}
            if set(ids) <= archived:
                return {"customer_id": customer_id, "customer_billing_provider_configuration_ids": ids}
            return None

        return self._request(
            "POST",
            "/v1/archiveCustomerBillingProviderConfigurations",
            send,
            idempotency_key=idempotency_key,
            verify=verify,
        )

    # -- account-level billing providers and tax credentials ------------------------

    def iter_configured_billing_providers(self) -> Iterator[dict[str, Any]]:
        """Every configured delivery method, across all pages (``POST /v1/listConfiguredBillingProviders``).

        The cursor travels in the request body.
        """
        sdk = self._sdk()
        cursor: str | None = None
        seen: set[str] = set()
        while True:

            def send(headers: dict[str, str], cursor: str | None = cursor) -> Any:
                raw = sdk.v1.settings.billing_providers.with_raw_response
                if cursor is None:
                    return _json(raw.list(extra_headers=headers))
                return _json(raw.list(next_page=cursor, extra_headers=headers))

            page = self._request("POST", "/v1/listConfiguredBillingProviders", send)
            yield from page["data"]
            cursor = page.get("next_page")
            if not cursor or cursor in seen:
                return
            seen.add(cursor)

    def list_configured_billing_providers(self) -> list[dict[str, Any]]:
        """All configured delivery methods, every page read."""
        return list(self.iter_configured_billing_providers())

    def upsert_avalara_credentials(
        self,
        delivery_method_ids: Sequence[str],
        *,
        avalara_environment: str,
        avalara_username: str,
        avalara_password: str,
        commit_transactions: bool | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Set Avalara credentials on delivery methods (``POST /v1/upsertAvalaraCredentials``).

        An overwrite by nature, so it is retried after a 5xx with a fresh key.

        :param delivery_method_ids: delivery methods to update.
        :param avalara_environment: ``SANDBOX`` or ``PRODUCTION``.
        :param avalara_username: Avalara user name.
        :param avalara_password: Avalara password (never logged).
        :param commit_transactions: commit transactions in Avalara.
        :param idempotency_key: key sent as ``Idempotency-Key``.
        """
        from metronome import omit

        sdk = self._sdk()
        ids = list(delivery_method_ids)

        def send(headers: dict[str, str]) -> None:
            sdk.v1.settings.upsert_avalara_credentials(
                avalara_environment=avalara_environment,  # type: ignore[arg-type]
                avalara_username=avalara_username,
                avalara_password=avalara_password,
                delivery_method_ids=ids,
                commit_transactions=omit if commit_transactions is None else commit_transactions,
                extra_headers=headers,
            )

        self._request("POST", "/v1/upsertAvalaraCredentials", send, idempotency_key=idempotency_key)

    # -- customers -------------------------------------------------------------------

    def iter_customers(
        self,
        *,
        ingest_alias: str | None = None,
        customer_ids: Sequence[str] | None = None,
        only_archived: bool = False,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Customers, page by page (``GET /v1/customers``).

        :param ingest_alias: only the customer with this ingest alias.
        :param customer_ids: only these customers (at most 100 per call: longer
            lists are split).
        :param only_archived: archived customers instead of active ones.
        :param page_size: ``limit`` of each page (1..100).
        """
        if customer_ids is not None and len(customer_ids) > MAX_PAGE_SIZE:
            for start in range(0, len(customer_ids), MAX_PAGE_SIZE):
                yield from self.iter_customers(
                    ingest_alias=ingest_alias,
                    customer_ids=customer_ids[start : start + MAX_PAGE_SIZE],
                    only_archived=only_archived,
                    page_size=page_size,
                )
            return
        from metronome import omit

        sdk = self._sdk()
        limit = max(1, min(page_size, MAX_PAGE_SIZE))
        cursor: str | None = None
        while True:

            def send(headers: dict[str, str], cursor: str | None = cursor) -> Any:
                return _json(
                    sdk.v1.customers.with_raw_response.list(
                        limit=limit,
                        next_page=cursor if cursor else omit,
                        ingest_alias=ingest_alias if ingest_alias is not None else omit,
                        customer_ids=list(customer_ids) if customer_ids is not None else omit,
                        only_archived=only_archived if only_archived else omit,
                        extra_headers=headers,
                    )
                )

            page = self._request("GET", "/v1/customers", send)
            yield from page["data"]
            cursor = page.get("next_page")
            if not cursor:
                return

    def list_customers(self, **kwargs: Any) -> list[dict[str, Any]]:
        """All customers matching the filters of :meth:`iter_customers`."""
        return list(self.iter_customers(**kwargs))

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        """One customer (``GET /v1/customers/{customer_id}``).

        :param customer_id: Metronome customer id.
        """
        sdk = self._sdk()

        def send(headers: dict[str, str]) -> dict[str, Any]:
            resp = sdk.v1.customers.with_raw_response.retrieve(customer_id=customer_id, extra_headers=headers)
            return _json(resp)["data"]

        return self._request("GET", f"/v1/customers/{customer_id}", send)

    def find_customer_by_ingest_alias(self, ingest_alias: str) -> dict[str, Any] | None:
        """The active customer holding ``ingest_alias``, or ``None``.

        :param ingest_alias: the alias to look up.
        """
        for customer in self.iter_customers(ingest_alias=ingest_alias, page_size=1):
            return customer
        return None

    # -- health ------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated read, one attempt; return ``(ok, message)``.

        The read is ``GET /v1/customers?limit=1``. Airflow's *Test* button runs this
        on a connection id of its own making, so the message names what was tested
        (the base URL and the request) and, on failure, what failed (the status and
        Metronome's message, or the network error). It never holds the token.
        """
        from metronome import APIConnectionError, APIStatusError

        call = "GET /v1/customers"
        try:
            base_url = self.settings.base_url
            sdk = self._sdk()
        except Exception as err:  # the connection is unusable: no token, bad base URL
            return False, self._scrub(f"Cannot test the Metronome connection: {err}")
        self._count_call()
        try:
            page = _json(sdk.v1.customers.with_raw_response.list(limit=1))
        except APIStatusError as err:
            status = int(err.status_code)
            message = self._api_message(err)
            if status in (401, 403):
                text = (
                    f"Metronome at {base_url} refused the API token: {call} answered {status} "
                    f"({message}); check the token and its environment (sandbox or production)"
                )
            else:
                text = f"Metronome at {base_url} answered {status} to {call}: {message}"
                if status == 404:
                    text += "; is the base URL right?"
            request_id = err.response.headers.get("x-request-id")
            if request_id:
                text += f" (request id {request_id})"
            return False, self._scrub(text)
        except APIConnectionError as err:
            reason = _transport_reason(err)
            return False, self._scrub(f"Could not reach Metronome at {base_url} ({call}): {reason}")
        except ValueError:
            return False, self._scrub(
                f"{base_url} answered {call} with a body that is not JSON; is the base URL right?"
            )
        except Exception as err:
            return False, self._scrub(
                f"{call} to {base_url} failed: {type(err).__name__}: {err}; is the base URL right?"
            )
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            return False, (
                f"{base_url} answered {call} with 200 but not like the Metronome API (no data list); "
                "is the base URL right?"
            )
        return True, f"Connected to Metronome at {base_url}: the API token was accepted ({call})"


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
        api: MetronomeApi,
        method: str,
        path: str,
        max_retries: int | None = None,
        *,
        keyed: bool = False,
    ) -> None:
        self.api = api
        self.method = method
        self.path = path
        self.policy = api.settings.retry
        self.retries = self.policy.max_retries if max_retries is None else max_retries
        self.keyed = keyed
        self.limiter, self.log = api._limiter()
        self.attempt = 0
        self.errors = 0
        self.throttled = 0
        self.conflicts = 0
        self.waited = 0.0

    def start(self) -> float:
        """Count an attempt; return how long to wait first (client-side pacing)."""
        self.attempt += 1
        self.api._count_call()
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
            last = self.api._api_error(err, self.method, self.path, self.attempt)
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
            reason = self.api._scrub(_transport_reason(err))
            last = MetronomeConnectionError(reason, method=self.method, path=self.path, attempts=self.attempt)
        self.errors += 1
        if self.errors > self.retries:
            raise last from None
        wait = self.policy.backoff(self.errors, headers)
        self._spend(wait, last)
        self._log_retry(reason, self.errors, self.retries, wait)
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
        self.log.retry(
            "Metronome %s %s: %s, retry %d/%d in %.2fs",
            self.method, self.path, reason, number, of, wait,
        )  # fmt: skip


class MetronomeClient(MetronomeApi):
    """The typed operations without Airflow: settings come from arguments.

    :param base_url: a full URL, a bare host (https assumed) or ``None`` for production.
    :param token: the API token.
    :param timeout: per-request timeout in seconds.
    :param retry: retry policy; the default retries 5 times within 120 s.
    :param max_connections: HTTP connection pool size.
    """

    def __init__(
        self,
        base_url: str | None,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_connections: int = 64,
    ) -> None:
        self._settings_cache = ClientSettings(
            base_url=normalize_base_url(base_url),
            token=token,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            max_connections=max_connections,
        )

    def _client_settings(self) -> ClientSettings:  # pragma: no cover - set in __init__
        assert self._settings_cache is not None
        return self._settings_cache

    def __repr__(self) -> str:
        return f"MetronomeClient(base_url={self.settings.base_url!r})"
