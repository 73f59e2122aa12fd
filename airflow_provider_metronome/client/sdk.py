"""The official SDK client of one Metronome client: built once, on first use.

One ``metronome.Metronome`` is built per client, on the httpx client of
:mod:`.transport` (no redirects followed, a deadline for each whole answer, no cookie
jar). :meth:`SdkTransport.client` is that client, with the SDK's own retries, for
code that calls endpoints this provider does not wrap (``get_conn()``);
:meth:`SdkTransport.raw` is the same client seen through
``with_options(max_retries=0)``, for the typed calls, whose retries the request
executor owns; :meth:`SdkTransport.prepared_post` prepares a hot call once on
it. ``with_options`` (the SDK's ``copy``) hands the copy the same httpx
client, so both share one connection pool, and closing the client closes it for both.

Nothing here imports the SDK or httpx before a client is built: the hook module is
imported when Airflow parses DAG files.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.client.redact import install_log_filter
from airflow_provider_metronome.client.settings import warn_if_cleartext

log = logging.getLogger("airflow_provider_metronome.client")

if TYPE_CHECKING:
    import httpx
    from metronome import Metronome

    from airflow_provider_metronome.client.prepared import PreparedPost
    from airflow_provider_metronome.client.settings import ClientSettings


def _no_cookies() -> Any:
    """A cookie jar that keeps nothing (built lazily: http.cookiejar imports urllib.request)."""
    import http.cookiejar

    class _NoCookies(http.cookiejar.CookieJar):
        def extract_cookies(self, response: Any, request: Any) -> None:
            return None

        def add_cookie_header(self, request: Any) -> None:
            return None

    return _NoCookies()


def user_agent() -> str:
    """This package's ``User-Agent``."""
    from airflow_provider_metronome import __version__

    return f"airflow-provider-metronome/{__version__}"


def _sdk_class() -> type[Metronome]:
    """``metronome.Metronome`` with two per-request costs paid once per client.

    The SDK rebuilds its default headers (a dozen entries, the token's among them)
    and re-parses the joined base URL and path for every request; both depend only
    on the client and the path, so they are kept. Everything else (and every header
    sent) is the SDK's own.
    """
    global _SDK_CLASS
    if _SDK_CLASS is not None:
        return _SDK_CLASS
    from metronome import Metronome

    class _Metronome(Metronome):
        @property
        def default_headers(self) -> dict[str, Any]:
            cached: dict[str, Any] | None = self.__dict__.get("_default_headers_cache")
            if cached is None:
                cached = self.__dict__["_default_headers_cache"] = dict(super().default_headers)
            return cached

        def _prepare_url(self, url: str) -> httpx.URL:
            urls: dict[str, httpx.URL] = self.__dict__.setdefault("_prepared_urls", {})
            prepared = urls.get(url)
            if prepared is None:
                prepared = super()._prepare_url(url)
                if len(urls) >= _MAX_PREPARED_URLS:  # paths with ids: keep the cache small
                    urls.clear()
                urls[url] = prepared
            return prepared

    _SDK_CLASS = _Metronome
    return _Metronome


_SDK_CLASS: type[Metronome] | None = None
_MAX_PREPARED_URLS = 256


def build_sdk_client(settings: ClientSettings) -> Metronome:
    """Build the official SDK client for ``settings`` (checked first).

    :param settings: the client's settings; the SDK retries ``settings.retry.max_retries`` times.
    :raises MetronomeConfigError: the settings cannot make a request (see :meth:`ClientSettings.check`).
    """
    import httpx

    from airflow_provider_metronome.client.transport import DeadlineClient

    settings.check()
    warn_if_cleartext(settings.base_url)
    timeout = settings.timeout
    http_client = DeadlineClient(
        # Metronome authenticates with a bearer token and sets no cookies; httpx's
        # per-response cookie bookkeeping costs ~10% of the client's CPU per call.
        cookies=_no_cookies(),
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        limits=httpx.Limits(
            max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
        ),
        # The whole answer within the timeout (httpx bounds each read only).
        deadline=timeout,
    )
    # The SDK, httpx and httpcore loggers exist now: keep the secrets out of them.
    install_log_filter()
    return _sdk_class()(
        bearer_token=settings.token,
        base_url=settings.base_url,
        timeout=timeout,
        max_retries=settings.retry.max_retries,
        default_headers={"User-Agent": user_agent()},
        http_client=http_client,
    )


class SdkTransport:
    """One SDK client, built on first use, shared by every thread of its Metronome client.

    :param settings: the client's settings.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client: Metronome | None = None
        self._raw: Metronome | None = None
        self._prepared: dict[str, PreparedPost | None] = {}

    def client(self) -> Metronome:
        """The SDK client, with the SDK's own retries (``max_retries`` of the settings)."""
        with self._lock:
            return self._built()

    def raw(self) -> Metronome:
        """The same client and connection pool, with the SDK's retries off (the executor retries)."""
        with self._lock:
            if self._raw is None:
                self._raw = self._built().with_options(max_retries=0)
            return self._raw

    def prepared_post(self, path: str) -> PreparedPost | None:
        """``POST path`` prepared once on :meth:`raw` (:mod:`.prepared`), for the hot calls.

        :param path: the API path, without ids (one is kept per path).
        :return: ``None`` if this SDK release cannot prepare requests (the caller then
            uses the SDK's public method).
        """
        if path in self._prepared:
            return self._prepared[path]
        from airflow_provider_metronome.client.prepared import PreparedPost

        raw = self.raw()
        try:
            prepared: PreparedPost | None = PreparedPost(raw, path)
        except (ImportError, AttributeError, TypeError) as err:
            log.debug("%s is sent through the SDK's public method: %s", path, err)
            prepared = None
        with self._lock:
            return self._prepared.setdefault(path, prepared)

    def _built(self) -> Metronome:
        if self._client is None:
            self._client = build_sdk_client(self.settings)
        return self._client

    def close(self) -> None:
        """Close the connection pool; the next call builds a new client."""
        with self._lock:
            client, self._client, self._raw = self._client, None, None
            self._prepared = {}
        if client is not None:
            client.close()
