"""One exception hierarchy for the provider.

Every error raised by the hook, the client and the sync engine derives from
:class:`MetronomeError`. Messages name the HTTP method, the path, the status and the
API's own ``message``; they never contain the API token nor any other secret a
request carried (the client scrubs them from any text it did not write itself
before raising).
"""

from __future__ import annotations

from typing import Any


class MetronomeError(Exception):
    """Base class of every error raised by airflow-provider-metronome."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword-only fields that Exception's own pickling would drop:
        # rebuild from the message and the attributes, whatever the subclass.
        return (_rebuild, (type(self), self.args, self.__dict__.copy()))


def _rebuild(cls: type[MetronomeError], args: tuple[Any, ...], state: dict[str, Any]) -> MetronomeError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


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


class MetronomeBadRequestError(MetronomeAPIError):
    """400 / 422 / 413: the request is malformed or too large; retrying will not help.

    A batch writer splits a batch answered with this family (one bad row, or a batch
    too large, fails no other row).
    """


class MetronomePayloadTooLargeError(MetronomeBadRequestError):
    """413: the request body is larger than the API (or a proxy in front of it) accepts.

    A :class:`MetronomeBadRequestError`, so a batch write answered 413 is split in
    smaller batches instead of failing the whole sync.
    """


class MetronomeRedirectError(MetronomeAPIError):
    """3xx: the API (or something at the base URL) redirected; the client never follows.

    Following would re-send a write, its secrets included, to wherever the redirect
    points (307/308) or turn it into a ``GET`` whose 2xx would pass for success
    (301/302/303).

    :param location: where the redirect pointed, without user info or query string
        (``None`` when the answer had no ``Location``).
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
        location: str | None = None,
    ) -> None:
        self.location = location
        super().__init__(status, message, method=method, path=path, request_id=request_id, attempts=attempts)


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

    :param message: what went wrong (kept as :attr:`reason`).
    :param method: HTTP method of the request.
    :param path: path of the request.
    :param attempts: how many attempts were made.
    """

    def __init__(self, message: str, *, method: str = "", path: str = "", attempts: int = 1) -> None:
        self.reason = message
        self.method = method
        self.path = path
        self.attempts = attempts
        super().__init__(
            f"Could not reach Metronome on {method} {path}: {message} after {attempts} attempt(s)"
        )


class MetronomeResponseError(MetronomeError):
    """The API answered with a success status, but not with what the endpoint documents.

    A body that is not JSON, a JSON body without the ``data`` the endpoint returns, a
    page cursor that comes back (the paging would never end), more pages than any
    account has: the message names the request and what was wrong. Not retried.

    :param message: what was wrong with the answer.
    :param method: HTTP method of the request.
    :param path: path of the request.
    :param status: HTTP status of the answer (``None`` when the fault spans answers,
        as a paging cycle does).
    :param attempts: how many attempts the request took.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        self.detail = message
        self.method = method
        self.path = path
        self.status = status
        self.attempts = attempts
        if status is not None:
            text = (
                f"Metronome API answered {status} on {method} {path} "
                f"with what the client cannot use: {message}"
            )
        else:
            text = f"Metronome API answers to {method} {path} cannot be used: {message}"
        super().__init__(text)


_BY_STATUS: dict[int, type[MetronomeAPIError]] = {
    400: MetronomeBadRequestError,
    401: MetronomeAuthError,
    403: MetronomeAuthError,
    404: MetronomeNotFoundError,
    409: MetronomeConflictError,
    413: MetronomePayloadTooLargeError,
    422: MetronomeBadRequestError,
    429: MetronomeRateLimitError,
}


def error_class_for(status: int) -> type[MetronomeAPIError]:
    """Return the exception class that stands for an HTTP error status."""
    if status >= 500:
        return MetronomeServerError
    if 300 <= status < 400:
        return MetronomeRedirectError
    return _BY_STATUS.get(status, MetronomeAPIError)
