"""Typed Metronome operations on the official SDK, with the provider's retry policy.

:class:`MetronomeApi` holds every call the provider makes. It is a mixin: the
Airflow hook (:class:`~airflow_provider_metronome.hooks.metronome.MetronomeHook`)
supplies its settings from an Airflow connection, and :class:`MetronomeClient`
supplies them from arguments, so the sync engine, the benchmarks and the tests can
use the same code without Airflow.

The SDK client is built with its own retries switched off: this module owns the
policy (see :mod:`.retry`) so that a write keeps its Idempotency-Key across
retries, switches to a fresh key after a 5xx (after asking the caller to check
what was created), and never retries 409.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_metronome.client.idempotency import retry_key
from airflow_provider_metronome.client.retry import RetryPolicy, is_retryable_status
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
        """Close the HTTP connection pools."""
        for client in (self._sdk_cache, self._raw_sdk_cache):
            if client is not None:
                client.close()
        self._sdk_cache = self._raw_sdk_cache = None

    # -- the retry loop ---------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        token = self._settings_cache.token if self._settings_cache else ""
        return text.replace(token, "***") if token and len(token) >= 4 else text

    def _api_error(self, err: Any, method: str, path: str, attempts: int) -> MetronomeAPIError:
        status = int(err.status_code)
        body = getattr(err, "body", None)
        message = ""
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]
        elif isinstance(body, str) and body:
            message = body[:500]
        if not message:
            message = err.response.reason_phrase or "no message"
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

    def _limiter(self) -> AdaptiveRateLimiter:
        if self._rate_limiter is None:
            with self._build_lock:
                if self._rate_limiter is None:
                    self._rate_limiter = AdaptiveRateLimiter()
        return self._rate_limiter

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
            (connection error, timeout, 408, 429); replaced after a 5xx.
        :param verify: for writes; called after a 5xx to check whether the write was
            applied anyway. A non-``None`` result is returned as the write's result.
        :param max_retries: overrides the policy's retry count (``test_connection`` uses 0).
        """
        from metronome import APIConnectionError, APIStatusError

        attempts = _Attempts(self, method, path, max_retries)
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
                    # applied: check, then go on with a new key (api-conventions.yaml).
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
        """Make one cheap authenticated read; return ``(ok, message)``."""
        try:
            base_url = self.settings.base_url
            sdk = self._sdk()

            def send(headers: dict[str, str]) -> Any:
                return sdk.v1.customers.list(limit=1, extra_headers=headers)

            self._request("GET", "/v1/customers", send, max_retries=0)
        except Exception as err:  # the message is shown in the UI; it never holds the token
            return False, self._scrub(str(err))
        return True, f"Connected to Metronome at {base_url}"


class _Attempts:
    """The attempts of one request: pacing, when to give up, how long to wait.

    Shared by the synchronous loop (:meth:`MetronomeApi._request`) and the asyncio
    one (:mod:`.aio`), so both retry exactly alike.
    """

    def __init__(self, api: MetronomeApi, method: str, path: str, max_retries: int | None = None) -> None:
        self.api = api
        self.method = method
        self.path = path
        self.policy = api.settings.retry
        self.retries = self.policy.max_retries if max_retries is None else max_retries
        self.limiter = api._limiter()
        self.attempt = 0
        self.waited = 0.0

    def start(self) -> float:
        """Count an attempt; return how long to wait first (client-side pacing)."""
        self.attempt += 1
        self.api._count_call()
        return self.limiter.reserve()

    def succeeded(self) -> None:
        self.limiter.on_success()

    def failed(self, err: Exception) -> tuple[float, int | None]:
        """Decide after a failed attempt: ``(seconds to wait, HTTP status or None)``, or raise.

        :param err: the SDK's ``APIStatusError`` or ``APIConnectionError``.
        """
        from metronome import APIStatusError

        last: Exception
        if isinstance(err, APIStatusError):
            status: int | None = int(err.status_code)
            assert status is not None
            last = self.api._api_error(err, self.method, self.path, self.attempt)
            if status == 429:
                self.limiter.on_throttled()
            if not is_retryable_status(status) or self.attempt > self.retries:
                raise last from None
            wait = self.policy.backoff(self.attempt, err.response.headers)
            reason = f"HTTP {status}"
        else:
            status = None
            reason = self.api._scrub(_transport_reason(err))
            last = MetronomeConnectionError(reason, method=self.method, path=self.path, attempts=self.attempt)
            if self.attempt > self.retries:
                raise last from None
            wait = self.policy.backoff(self.attempt)
        if self.waited + wait > self.policy.max_total_wait:
            raise last from None
        log.info(
            "Metronome %s %s: %s, retry %d/%d in %.2fs",
            self.method,
            self.path,
            reason,
            self.attempt,
            self.retries,
            wait,
        )
        self.waited += wait
        return wait, status


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
