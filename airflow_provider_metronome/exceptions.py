"""One exception hierarchy for the provider.

Every error raised by the hook, the client and the sync engine derives from
:class:`MetronomeError`. Messages name the HTTP method, the path, the status and the
API's own ``message``; they never contain the API token (the client scrubs the token
from any text it did not write itself before raising).
"""

from __future__ import annotations


class MetronomeError(Exception):
    """Base class of every error raised by airflow-provider-metronome."""


class MetronomeConfigError(MetronomeError):
    """The connection or the arguments are unusable (missing token, bad base URL, ...)."""


class MetronomeAPIError(MetronomeError):
    """The Metronome API answered with an error status.

    :param status: HTTP status code of the answer.
    :param message: the API's ``message`` (or a short description when it sent none).
    :param method: HTTP method of the request.
    :param path: path of the request, without host or query string.
    :param request_id: the ``x-request-id`` the API returned, when present.
    :param attempts: how many attempts were made before giving up.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        method: str = "",
        path: str = "",
        request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.api_message = message
        self.method = method
        self.path = path
        self.request_id = request_id
        self.attempts = attempts
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f" on {self.method} {self.path}" if self.path else ""
        text = f"Metronome API answered {self.status}{where}: {self.api_message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Keep the keyword-only fields when the exception crosses a process boundary.
        return (
            _rebuild_api_error,
            (
                type(self),
                self.status,
                self.api_message,
                self.method,
                self.path,
                self.request_id,
                self.attempts,
            ),
        )


def _rebuild_api_error(
    cls: type[MetronomeAPIError],
    status: int,
    message: str,
    method: str,
    path: str,
    request_id: str | None,
    attempts: int,
) -> MetronomeAPIError:
    return cls(status, message, method=method, path=path, request_id=request_id, attempts=attempts)


class MetronomeBadRequestError(MetronomeAPIError):
    """400 / 422: the request is malformed; retrying will not help."""


class MetronomeAuthError(MetronomeAPIError):
    """401 / 403: the token is missing, invalid, or lacks permission. Never retried."""


class MetronomeNotFoundError(MetronomeAPIError):
    """404: the resource does not exist."""


class MetronomeConflictError(MetronomeAPIError):
    """409: conflict with current state (ingest alias taken, Idempotency-Key reused)."""


class MetronomeRateLimitError(MetronomeAPIError):
    """429 after every retry was spent."""


class MetronomeServerError(MetronomeAPIError):
    """5xx after every retry was spent."""


class MetronomeConnectionError(MetronomeError):
    """The API could not be reached (connection refused/reset, timeout) after every retry.

    :param message: what went wrong.
    :param method: HTTP method of the request.
    :param path: path of the request.
    :param attempts: how many attempts were made.
    """

    def __init__(self, message: str, *, method: str = "", path: str = "", attempts: int = 1) -> None:
        self.method = method
        self.path = path
        self.attempts = attempts
        super().__init__(
            f"Could not reach Metronome on {method} {path}: {message} after {attempts} attempt(s)"
        )

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_rebuild_connection_error, (self.args[0], self.method, self.path, self.attempts))


def _rebuild_connection_error(text: str, method: str, path: str, attempts: int) -> MetronomeConnectionError:
    err = MetronomeConnectionError.__new__(MetronomeConnectionError)
    Exception.__init__(err, text)
    err.method, err.path, err.attempts = method, path, attempts
    return err


_BY_STATUS: dict[int, type[MetronomeAPIError]] = {
    400: MetronomeBadRequestError,
    401: MetronomeAuthError,
    403: MetronomeAuthError,
    404: MetronomeNotFoundError,
    409: MetronomeConflictError,
    422: MetronomeBadRequestError,
    429: MetronomeRateLimitError,
}


def error_class_for(status: int) -> type[MetronomeAPIError]:
    """Return the exception class that stands for an HTTP error status."""
    if status >= 500:
        return MetronomeServerError
    return _BY_STATUS.get(status, MetronomeAPIError)
