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

Whatever a server answers, a call ends, and says what went wrong: redirects are
errors, never followed (:mod:`.transport`); each request has a deadline for its
whole answer; every paging loop stops on a repeated cursor and after a bounded
number of pages; a success answer without what the endpoint documents raises
:class:`~airflow_provider_metronome.exceptions.MetronomeResponseError` naming the
request. No text the client writes (exceptions, log lines, ``test_connection``)
holds the token or another secret a request carried (:mod:`.redact`).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

from airflow_provider_metronome.client.idempotency import retry_key
from airflow_provider_metronome.client.redact import Secrets, install_log_filter, protect
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
    MetronomeError,
    MetronomeRedirectError,
    MetronomeResponseError,
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
# Paging loops stop (with an error) after this many pages: far more than any account
# holds (GET /v1/customers: 10 million customers at 100 a page; an account configures
# a handful of delivery methods), so only a server paging without end reaches it.
MAX_CUSTOMER_PAGES = 100_000
MAX_BILLING_PROVIDER_PAGES = 1_000
# Plain-text error bodies are cut to this many characters (after scrubbing).
MAX_ERROR_TEXT = 500

_cleartext_warned: set[str] = set()


def normalize_base_url(host: str | None) -> str:
    """Turn a connection ``host`` into a base URL.

    A full URL is kept as given; a bare host gets ``https://``; nothing gives the
    production API. A URL with a user name or password (``user:pass@host``) is
    refused: httpx would send those as Basic auth *instead of* the bearer token, and
    every message naming the base URL would print them. A query string or fragment
    is refused too (the SDK appends paths to the base URL; they cannot work).

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
    parts = urlsplit(value)
    # Never echo the URL itself in these messages: it may hold a password.
    if "@" in parts.netloc:
        raise MetronomeConfigError(
            "Base URL must not hold a user name or password (user:password@host); "
            "put the API token in the connection's password field"
        )
    if parts.query or parts.fragment or value.endswith("?"):
        raise MetronomeConfigError("Base URL must not have a query string or fragment")
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = -1
    if port is not None and not 0 < port < 65536:
        raise MetronomeConfigError("Base URL has an invalid port")
    if not parts.hostname:
        raise MetronomeConfigError("Base URL has no host")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _warn_if_cleartext(base_url: str) -> None:
    """Warn once per host when the token would cross the network unencrypted."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme.lower() != "http" or _is_loopback(host) or host in _cleartext_warned:
        return
    _cleartext_warned.add(host)
    log.warning(
        "The Metronome base URL uses cleartext http:// to %s: the API token and every request "
        "travel unencrypted; use https:// unless %s is a proxy on a trusted network",
        host,
        host,
    )


def _valid_token(token: str) -> bool:
    # The token travels in the Authorization header, "Bearer <token>"
    # (https://docs.metronome.com/api-reference/authentication.md): printable ASCII
    # only, and a Metronome token holds no whitespace.
    return token.isascii() and token.isprintable() and not any(c.isspace() for c in token)


def _no_cookies() -> Any:
    """A cookie jar that keeps nothing (built lazily: http.cookiejar imports urllib.request)."""
    import http.cookiejar

    class _NoCookies(http.cookiejar.CookieJar):
        def extract_cookies(self, response: Any, request: Any) -> None:
            return None

        def add_cookie_header(self, request: Any) -> None:
            return None

    return _NoCookies()


class _Malformed(Exception):
    """A success answer without what the endpoint documents (the request is named by the caller).

    :param detail: what was wrong.
    :param status: the answer's status.
    """

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _body(response: Any, *, empty_ok: bool = False) -> dict[str, Any]:
    """The JSON object of a raw SDK response.

    The official client made the request and raised on error statuses; reading the
    JSON directly skips building pydantic models only to dump them again (about 15%
    of the client's CPU per call).

    :param response: the SDK's raw response (``with_raw_response``).
    :param empty_ok: an empty body counts as ``{}``.
    """
    http = response.http_response
    status = http.status_code
    if empty_ok and not http.content.strip():
        return {}
    try:
        body = http.json()
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        kind = http.headers.get("content-type") or "no content type"
        text = http.text.strip()
        snippet = text[:100] + ("..." if len(text) > 100 else "")
        raise _Malformed(f"the body is not JSON ({kind}): {snippet!r}", status) from None
    if not isinstance(body, dict):
        raise _Malformed(f"the body is a JSON {_json_type(body)}, not an object", status)
    return body


def _data(response: Any, kind: type) -> Any:
    """The ``data`` of a raw SDK response, checked to be a ``kind`` (of objects, for a list).

    :param response: the SDK's raw response.
    :param kind: ``list`` or ``dict``.
    """
    return _data_of(_body(response), kind, response.http_response.status_code)


def _data_of(body: dict[str, Any], kind: type, status: int) -> Any:
    if "data" not in body:
        keys = ", ".join(sorted(map(str, body))[:5]) or "none"
        raise _Malformed(f"the body has no 'data' (keys: {keys})", status)
    data: Any = body["data"]
    if not isinstance(data, kind):
        raise _Malformed(
            f"'data' is a JSON {_json_type(data)}, not {'an array' if kind is list else 'an object'}", status
        )
    if isinstance(data, list):
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                raise _Malformed(f"data[{i}] is a JSON {_json_type(item)}, not an object", status)
    return data


def _page(response: Any) -> dict[str, Any]:
    """A page of a list endpoint: ``data`` an array of objects, ``next_page`` a string or null."""
    body = _body(response)
    status = response.http_response.status_code
    _data_of(body, list, status)
    cursor = body.get("next_page")
    if cursor is not None and not isinstance(cursor, str):
        raise _Malformed(f"'next_page' is a JSON {_json_type(cursor)}, not a string", status)
    return body


class _Pages:
    """The pages of one list: stops a cursor that comes back and a list without end.

    :param method: HTTP method, for messages.
    :param path: API path, for messages.
    :param limit: most pages read before giving up.
    """

    def __init__(self, method: str, path: str, limit: int) -> None:
        self.method = method
        self.path = path
        self.limit = limit
        self.count = 0
        self.seen: set[str] = set()

    def next(self, page: dict[str, Any]) -> str | None:
        """The cursor of the page after ``page``, or ``None`` at the end of the list."""
        self.count += 1
        cursor = page.get("next_page")
        if not cursor:
            return None
        if cursor in self.seen:
            shown = cursor if len(cursor) <= 60 else f"{cursor[:57]}..."
            raise MetronomeResponseError(
                f"next_page {shown!r} came back after {self.count} pages: the paging is a cycle "
                "and would never end",
                method=self.method,
                path=self.path,
            )
        if self.count >= self.limit:
            raise MetronomeResponseError(
                f"still a next_page after {self.count} pages; stopped (at most {self.limit} pages "
                "are read, more than any account holds: the paging seems to have no end)",
                method=self.method,
                path=self.path,
            )
        self.seen.add(cursor)
        return cursor


def _redirect_target(response: Any) -> str | None:
    """Where a 3xx pointed: absolute, without user info, query string or fragment."""
    raw = response.headers.get("location")
    if not raw:
        return None
    try:
        parts = urlsplit(urljoin(str(response.url), raw.strip()))
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "an unreadable Location"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path}" + ("?..." if parts.query else "")


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
    :param secrets: more texts to keep out of messages and logs; the token as given
        is added here when it had surrounding whitespace (``token`` is stripped:
        Metronome tokens hold none, but a token read from a file often ends with a
        newline).
    """

    base_url: str
    token: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_connections: int = 64
    source: str = "the Metronome client"
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        given = self.token
        self.token = given.strip()
        if given != self.token and given not in self.secrets:
            self.secrets = (*self.secrets, given)


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
    _secrets_cache: Secrets | None = None
    _secrets_lock = threading.Lock()
    _protected: ClientSettings | None = None  # the settings whose token _secrets_cache knows

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

    def _secrets(self) -> Secrets:
        """What this client keeps out of its texts: the token (once known) and request secrets."""
        if self._secrets_cache is None:
            with self._secrets_lock:
                if self._secrets_cache is None:
                    self._secrets_cache = Secrets()
        s = self._settings_cache
        if s is not None and self._protected is not s:
            # "Bearer <token>" only with a token: "Bearer " alone is no secret.
            bearer = (f"Bearer {s.token}",) if s.token else ()
            protect(s.token, *bearer, *s.secrets, scrubbers=(self._secrets_cache,))
            self._protected = s
        return self._secrets_cache

    def _build_sdk(self, max_retries: int) -> Metronome:
        import httpx
        from metronome import Metronome

        from airflow_provider_metronome.client.transport import DeadlineClient

        s = self.settings
        self._secrets()
        if not s.token:
            raise MetronomeConfigError(f"No API token: set the password of {s.source}")
        if not _valid_token(s.token):
            # Never echo the token: name where it is, say what is wrong with it.
            raise MetronomeConfigError(
                f"The API token in {s.source} has characters an API token cannot hold "
                "(non-ASCII, whitespace or control characters); copy it again from the Metronome app"
            )
        if not (isinstance(s.timeout, (int, float)) and math.isfinite(s.timeout) and s.timeout > 0):
            raise MetronomeConfigError(f"The timeout of {s.source} must be a number of seconds above 0")
        _warn_if_cleartext(s.base_url)
        http_client = DeadlineClient(
            # Metronome authenticates with a bearer token and sets no cookies; httpx's
            # per-response cookie bookkeeping costs ~10% of the client's CPU per call.
            cookies=_no_cookies(),
            timeout=httpx.Timeout(s.timeout, connect=min(5.0, s.timeout)),
            limits=httpx.Limits(
                max_connections=s.max_connections, max_keepalive_connections=s.max_connections
            ),
            # The whole answer within the timeout (httpx bounds each read only).
            deadline=s.timeout,
        )
        # The SDK, httpx and httpcore loggers exist now: keep the secrets out of them.
        install_log_filter()
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
        """``text`` without the token or any secret a request of this client carried."""
        return self._secrets().scrub(text)

    def _api_message(self, err: Any) -> str:
        """Metronome's ``message`` of an SDK ``APIStatusError`` (or the reason phrase), scrubbed.

        A plain-text body is scrubbed *before* it is cut to :data:`MAX_ERROR_TEXT`
        characters, so a secret the cut would split is gone whole.
        """
        body = getattr(err, "body", None)
        message = ""
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = self._scrub(body["message"])
        elif isinstance(body, str) and body:
            message = self._secrets().truncate(body, MAX_ERROR_TEXT)
        return message or err.response.reason_phrase or "no message"

    def _redirect_message(self, err: Any) -> tuple[str, str | None]:
        """What to say about a 3xx, and where it pointed."""
        target = _redirect_target(err.response)
        where = f"redirected to {self._scrub(target)}" if target else "a redirect without a Location"
        return (
            f"{where}; the client does not follow redirects (a write would be re-sent elsewhere "
            "or turned into a GET): is the base URL right?",
            target and self._scrub(target),
        )

    def _api_error(self, err: Any, method: str, path: str, attempts: int) -> MetronomeAPIError:
        status = int(err.status_code)
        request_id = err.response.headers.get("x-request-id")
        request_id = self._scrub(request_id) if request_id else None
        if 300 <= status < 400:
            message, target = self._redirect_message(err)
            return MetronomeRedirectError(
                status,
                message,
                method=method,
                path=path,
                request_id=request_id,
                attempts=attempts,
                location=target,
            )
        message = self._api_message(err)
        if status in (401, 403):
            message = f"{message} — check the API token in {self.settings.source}"
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
            failure: MetronomeError | None = None
            try:
                result = send(headers)
            except _Malformed as bad:
                attempts.succeeded()  # answered: the pace is not at fault
                failure = MetronomeResponseError(
                    self._scrub(bad.detail),
                    method=method,
                    path=path,
                    status=bad.status,
                    attempts=attempts.attempt,
                )
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
            created: list[dict[str, Any]] = _data(resp, list)
            status = resp.http_response.status_code
            # One created configuration per item sent, in order, each with its id.
            if len(created) != len(data):
                raise _Malformed(
                    f"'data' has {len(created)} items for {len(data)} configurations sent", status
                )
            for i, item in enumerate(created):
                if not isinstance(item.get("id"), str) or not item["id"]:
                    raise _Malformed(f"data[{i}] has no id", status)
            return created

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
            configurations: list[dict[str, Any]] = _data(resp, list)
            return configurations

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
            archived: dict[str, Any] = _data(resp, dict)
            return archived

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

        The cursor travels in the request body. Each delivery method comes once,
        however often the pages repeat it; a cursor that comes back, or more than
        :data:`MAX_BILLING_PROVIDER_PAGES` pages, raises
        :class:`~airflow_provider_metronome.exceptions.MetronomeResponseError`.
        """
        method, path = "POST", "/v1/listConfiguredBillingProviders"
        sdk = self._sdk()
        pages = _Pages(method, path, MAX_BILLING_PROVIDER_PAGES)
        cursor: str | None = None
        delivered: set[str] = set()
        while True:

            def send(headers: dict[str, str], cursor: str | None = cursor) -> dict[str, Any]:
                raw = sdk.v1.settings.billing_providers.with_raw_response
                resp = (
                    raw.list(extra_headers=headers)
                    if cursor is None
                    else raw.list(next_page=cursor, extra_headers=headers)
                )
                page = _page(resp)
                for i, item in enumerate(page["data"]):
                    if not isinstance(item.get("delivery_method_id"), str):
                        raise _Malformed(
                            f"data[{i}] has no delivery_method_id", resp.http_response.status_code
                        )
                return page

            page = self._request(method, path, send)
            for item in page["data"]:
                if item["delivery_method_id"] not in delivered:
                    delivered.add(item["delivery_method_id"])
                    yield item
            cursor = pages.next(page)
            if cursor is None:
                return

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

        # Out of every message and log line from now on, in every form it may take
        # (an error body that echoes the request, the SDK's DEBUG request line).
        protect(avalara_password, scrubbers=(self._secrets(),))

        def send(headers: dict[str, str]) -> None:
            resp = sdk.v1.settings.with_raw_response.upsert_avalara_credentials(
                avalara_environment=avalara_environment,  # type: ignore[arg-type]
                avalara_username=avalara_username,
                avalara_password=avalara_password,
                delivery_method_ids=ids,
                commit_transactions=omit if commit_transactions is None else commit_transactions,
                extra_headers=headers,
            )
            # The answer is an empty object
            # (https://docs.metronome.com/api-reference/settings/upsert-avalara-credentials.md).
            _body(resp, empty_ok=True)

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

        method, path = "GET", "/v1/customers"
        sdk = self._sdk()
        limit = max(1, min(page_size, MAX_PAGE_SIZE))
        pages = _Pages(method, path, MAX_CUSTOMER_PAGES)
        cursor: str | None = None
        while True:

            def send(headers: dict[str, str], cursor: str | None = cursor) -> dict[str, Any]:
                return _page(
                    sdk.v1.customers.with_raw_response.list(
                        limit=limit,
                        next_page=cursor if cursor else omit,
                        ingest_alias=ingest_alias if ingest_alias is not None else omit,
                        customer_ids=list(customer_ids) if customer_ids is not None else omit,
                        only_archived=only_archived if only_archived else omit,
                        extra_headers=headers,
                    )
                )

            page = self._request(method, path, send)
            yield from page["data"]
            cursor = pages.next(page)
            if cursor is None:
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
            customer: dict[str, Any] = _data(resp, dict)
            return customer

        return self._request("GET", f"/v1/customers/{customer_id}", send)

    def find_customer_by_ingest_alias(self, ingest_alias: str) -> dict[str, Any] | None:
        """The active customer holding ``ingest_alias``, or ``None``.

        The answer is checked, not trusted: a server or proxy that dropped the
        ``ingest_alias`` filter would otherwise attach every alias to whichever customer
        it listed first.

        :param ingest_alias: the alias to look up.
        :raises MetronomeResponseError: the customer returned does not hold the alias.
        """
        from airflow_provider_metronome.exceptions import MetronomeResponseError

        for customer in self.iter_customers(ingest_alias=ingest_alias, page_size=1):
            aliases = customer.get("ingest_aliases") if isinstance(customer, dict) else None
            if not isinstance(aliases, list) or ingest_alias not in aliases:
                raise MetronomeResponseError(
                    f"asked for the customer with ingest alias {ingest_alias!r}, got customer "
                    f"{customer.get('id') if isinstance(customer, dict) else '?'!r}, which does not hold it "
                    "(was the ingest_alias filter dropped on the way?)",
                    method="GET",
                    path="/v1/customers",
                )
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
            page = sdk.v1.customers.with_raw_response.list(limit=1).http_response.json()
        except APIStatusError as err:
            status = int(err.status_code)
            if 300 <= status < 400:
                message, _ = self._redirect_message(err)
            else:
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
            return False, self._scrub(
                f"{base_url} answered {call} with 200 but not like the Metronome API (no data list); "
                "is the base URL right?"
            )
        return True, self._scrub(f"Connected to Metronome at {base_url}: the API token was accepted ({call})")


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
        scrub = self.api._scrub
        self.log.retry(
            "Metronome %s %s: %s, retry %d/%d in %.2fs",
            self.method, scrub(self.path), scrub(reason), number, of, wait,
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
