"""The Metronome client: settings, one SDK client, a request executor and the typed calls.

:class:`MetronomeClient` is what the sync engine, the benchmarks and the tests use
without Airflow, and what the Airflow hook builds from a connection
(:meth:`MetronomeClient.from_settings`). It is made of parts, each in its own module:

* :mod:`.settings` — the values and their checks (base URL, token, timeout);
* :mod:`.sdk` — one official SDK client, built on first use, whose retry-free view
  shares its connection pool; :mod:`.transport` — the httpx client under it (no
  redirects followed, a deadline for each whole answer);
* :mod:`.executor` — the retry loop, the rate limiter, the call counter;
  :mod:`.errors` — the mapping of SDK errors to the provider's, with every secret scrubbed;
* :mod:`.endpoints` — the typed calls; :mod:`.responses` — the checks of their answers.

Whatever a server answers, a call ends and says what went wrong; no text the client
writes (exceptions, log lines, :meth:`MetronomeClient.test_connection`) holds the
token or another secret a request carried (:mod:`.redact`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.client.endpoints import MetronomeEndpoints
from airflow_provider_metronome.client.errors import ErrorMapper, transport_reason
from airflow_provider_metronome.client.executor import RequestExecutor
from airflow_provider_metronome.client.retry import RetryPolicy
from airflow_provider_metronome.client.sdk import SdkTransport
from airflow_provider_metronome.client.settings import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    ClientSettings,
    normalize_base_url,
)

if TYPE_CHECKING:
    from metronome import Metronome

_HEALTH_CALL = "GET /v1/customers"


class MetronomeClient(MetronomeEndpoints):
    """The typed Metronome calls with the provider's retry policy; settings come from arguments.

    :param base_url: a full URL, a bare host (https assumed) or ``None`` for production.
    :param token: the API token.
    :param timeout: seconds each request may take, its whole answer included.
    :param retry: retry policy; the default retries 5 times within 120 s.
    :param max_connections: HTTP connection pool size.
    :raises MetronomeConfigError: the base URL is unusable.
    """

    settings: ClientSettings

    def __init__(
        self,
        base_url: str | None,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self._assemble(
            ClientSettings(
                base_url=normalize_base_url(base_url),
                token=token,
                timeout=timeout,
                retry=retry or RetryPolicy(),
                max_connections=max_connections,
            )
        )

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> MetronomeClient:
        """A client for settings resolved elsewhere (the hook reads them from a connection).

        :param settings: the settings (the base URL already normalized).
        """
        client = cls.__new__(cls)
        client._assemble(settings)
        return client

    def _assemble(self, settings: ClientSettings) -> None:
        self.settings = settings
        errors = ErrorMapper(settings)
        super().__init__(RequestExecutor(settings.retry, errors), SdkTransport(settings))

    @property
    def api_calls(self) -> int:
        """HTTP requests sent so far by the typed calls and :meth:`test_connection` (every retry counts)."""
        return self.executor.calls

    @property
    def api_calls_by_endpoint(self) -> dict[str, int]:
        """HTTP requests sent so far by endpoint, as :attr:`api_calls` counts them (a copy).

        Keyed ``"<METHOD> <path template>"``: ``"GET /v1/customers"``,
        ``"POST /v1/customers/{customer_id}/setIngestAliases"`` (ids are grouped by
        template). The values add up to :attr:`api_calls`.
        """
        return self.executor.calls_by_endpoint

    def get_conn(self) -> Metronome:
        """Return the official SDK client (``metronome.Metronome``).

        It is configured with the base URL, the token, the timeout, this package's
        ``User-Agent`` and the SDK's own retries (``max_retries`` of the settings),
        for code that wants to call endpoints this provider does not wrap. It shares
        its connection pool with the typed calls.
        """
        return self.transport.client()

    def close(self) -> None:
        """Close the HTTP connection pool; log the retry counts not yet logged.

        The client stays usable: the next call opens a new pool.
        """
        self.executor.flush()
        self.transport.close()

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated read, one attempt; return ``(ok, message)``.

        The read is ``GET /v1/customers?limit=1``. Airflow's *Test* button runs this
        on a connection id of its own making, so the message names what was tested
        (the base URL and the request) and, on failure, what failed (the status and
        Metronome's message, or the network error). It never holds the token.
        """
        from metronome import APIConnectionError, APIStatusError

        errors = self.executor.errors
        base_url = self.settings.base_url
        try:
            sdk = self.transport.raw()
        except Exception as err:  # the connection is unusable: no token, bad timeout
            return False, errors.scrub(f"Cannot test the Metronome connection: {err}")
        self.executor.count_call(*_HEALTH_CALL.split(" "))
        try:
            answer: Any = sdk.v1.customers.with_raw_response.list(limit=1).http_response.json()
        except APIStatusError as err:
            return False, errors.scrub(self._refusal(err))
        except APIConnectionError as err:
            reason = transport_reason(err)
            return False, errors.scrub(f"Could not reach Metronome at {base_url} ({_HEALTH_CALL}): {reason}")
        except ValueError:
            return False, errors.scrub(
                f"{base_url} answered {_HEALTH_CALL} with a body that is not JSON; is the base URL right?"
            )
        except Exception as err:
            return False, errors.scrub(
                f"{_HEALTH_CALL} to {base_url} failed: {type(err).__name__}: {err}; is the base URL right?"
            )
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            return False, errors.scrub(
                f"{base_url} answered {_HEALTH_CALL} with 200 but not like the Metronome API (no data list); "
                "is the base URL right?"
            )
        return True, errors.scrub(
            f"Connected to Metronome at {base_url}: the API token was accepted ({_HEALTH_CALL})"
        )

    def _refusal(self, err: Any) -> str:
        """What :meth:`test_connection` says about an error status (not yet scrubbed)."""
        errors = self.executor.errors
        base_url = self.settings.base_url
        status = int(err.status_code)
        message = errors.redirect_message(err)[0] if 300 <= status < 400 else errors.api_message(err)
        if status in (401, 403):
            text = (
                f"Metronome at {base_url} refused the API token: {_HEALTH_CALL} answered {status} "
                f"({message}); check the token and its environment (sandbox or production)"
            )
        else:
            text = f"Metronome at {base_url} answered {status} to {_HEALTH_CALL}: {message}"
            if status == 404:
                text += "; is the base URL right?"
        request_id = err.response.headers.get("x-request-id")
        if request_id:
            text += f" (request id {request_id})"
        return text

    def __repr__(self) -> str:
        return f"MetronomeClient(base_url={self.settings.base_url!r})"
