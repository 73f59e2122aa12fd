"""From what the SDK raised to the provider's exceptions, with every secret scrubbed.

An :class:`ErrorMapper` belongs to one client: it knows that client's secrets (the
token in every form, and every secret a request of the client carried, such as an
Avalara password) and writes every message the client raises or logs. The SDK's own
exceptions are never chained: their text, and a body that may echo the request, are
not ours to print.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from airflow_provider_metronome.client.redact import Secrets, protect
from airflow_provider_metronome.exceptions import (
    MetronomeAPIError,
    MetronomeConnectionError,
    MetronomeRedirectError,
    MetronomeResponseError,
    error_class_for,
)

if TYPE_CHECKING:
    from airflow_provider_metronome.client.responses import MalformedResponse
    from airflow_provider_metronome.client.settings import ClientSettings

# Plain-text error bodies are cut to this many characters (after scrubbing).
MAX_ERROR_TEXT = 500


def transport_reason(err: BaseException) -> str:
    """Why a request got no answer: the SDK error's type and the httpx error under it.

    :param err: the SDK's ``APIConnectionError`` (or ``APITimeoutError``).
    """
    # The SDK's own text is just "Connection error."; the httpx cause says why.
    cause = err.__cause__ or err.__context__
    detail = f"{type(cause).__name__}: {cause}" if cause is not None and str(cause) else ""
    return f"{type(err).__name__} ({detail})" if detail else type(err).__name__


def redirect_target(response: Any) -> str | None:
    """Where a 3xx pointed: absolute, without user info, query string or fragment.

    :param response: the httpx response of the 3xx.
    """
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


class ErrorMapper:
    """Scrubs one client's texts and turns the SDK's errors into the provider's.

    :param settings: the client's settings; their token (in every form) and
        ``secrets`` are scrubbed from every text from now on.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.source = settings.source
        self.secrets = Secrets()
        self.protect(*settings.secret_forms)

    def protect(self, *secrets: str | None) -> None:
        """Keep ``secrets`` out of this client's texts and out of every log from now on.

        :param secrets: the secrets as given (e.g. a password a request carries).
        """
        protect(*secrets, scrubbers=(self.secrets,))

    def scrub(self, text: str) -> str:
        """``text`` without the token or any secret a request of this client carried."""
        return self.secrets.scrub(text)

    def api_message(self, err: Any) -> str:
        """Metronome's ``message`` of an SDK ``APIStatusError`` (or the reason phrase), scrubbed.

        A plain-text body is scrubbed *before* it is cut to :data:`MAX_ERROR_TEXT`
        characters, so a secret the cut would split is gone whole.

        :param err: the SDK's ``APIStatusError``.
        """
        body = getattr(err, "body", None)
        message = ""
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = self.scrub(body["message"])
        elif isinstance(body, str) and body:
            message = self.secrets.truncate(body, MAX_ERROR_TEXT)
        return message or err.response.reason_phrase or "no message"

    def redirect_message(self, err: Any) -> tuple[str, str | None]:
        """What to say about a 3xx, and where it pointed (scrubbed).

        :param err: the SDK's ``APIStatusError`` of the 3xx.
        """
        target = redirect_target(err.response)
        where = f"redirected to {self.scrub(target)}" if target else "a redirect without a Location"
        return (
            f"{where}; the client does not follow redirects (a write would be re-sent elsewhere "
            "or turned into a GET): is the base URL right?",
            target and self.scrub(target),
        )

    def api_error(self, err: Any, method: str, path: str, attempts: int) -> MetronomeAPIError:
        """The provider's exception for an error status.

        :param err: the SDK's ``APIStatusError``.
        :param method: HTTP method of the request.
        :param path: API path of the request.
        :param attempts: attempts made so far.
        """
        status = int(err.status_code)
        request_id = err.response.headers.get("x-request-id")
        request_id = self.scrub(request_id) if request_id else None
        if 300 <= status < 400:
            message, target = self.redirect_message(err)
            return MetronomeRedirectError(
                status,
                message,
                method=method,
                path=path,
                request_id=request_id,
                attempts=attempts,
                location=target,
            )
        message = self.api_message(err)
        if status in (401, 403):
            message = f"{message} — check the API token in {self.source}"
        return error_class_for(status)(
            status,
            self.scrub(message),
            method=method,
            path=path,
            request_id=request_id,
            attempts=attempts,
        )

    def connection_error(
        self, err: BaseException, method: str, path: str, attempts: int
    ) -> MetronomeConnectionError:
        """The provider's exception for a request that got no answer.

        :param err: the SDK's ``APIConnectionError``.
        :param method: HTTP method of the request.
        :param path: API path of the request.
        :param attempts: attempts made so far.
        """
        return MetronomeConnectionError(
            self.scrub(transport_reason(err)), method=method, path=path, attempts=attempts
        )

    def response_error(
        self, bad: MalformedResponse, method: str, path: str, attempts: int
    ) -> MetronomeResponseError:
        """The provider's exception for a success answer without what the endpoint documents.

        :param bad: what was wrong.
        :param method: HTTP method of the request.
        :param path: API path of the request.
        :param attempts: attempts made so far.
        """
        return MetronomeResponseError(
            self.scrub(bad.detail), method=method, path=path, status=bad.status, attempts=attempts
        )
