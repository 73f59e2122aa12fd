"""The httpx client under the SDK: no redirects, and a deadline for each whole request.

httpx's timeouts bound each network operation, not a request: its read timeout is
"the maximum duration to wait for a chunk of data to be received"
(https://www.python-httpx.org/advanced/timeouts/), so a server that sends one byte
at a time, each well within it, keeps a request alive for as long as it likes, and
httpx has no timeout for the whole. :class:`DeadlineClient` gives each request one:
the body is read chunk by chunk and the request fails with :class:`httpx.ReadTimeout`
once ``deadline`` seconds have passed since it was sent. Every single wait (connect,
write, each read) is also bounded by ``deadline``, so once the headers are in, a
request lasts at most the deadline plus the wait for the chunk under way. (The status
line and headers, a few hundred bytes, are read by the transport with no hook between
reads: there the read timeout is the bound.)

The SDK reads the body inside ``httpx.Client.send`` (it streams nothing for the raw
responses this provider uses), the one method this class overrides, so the deadline
holds for the typed calls and for the SDK client of
:meth:`~airflow_provider_metronome.client.client.MetronomeClient.get_conn` alike,
with any transport (a proxy from the environment included).

Direct connections go through :class:`.stdlib_transport.StdlibTransport` (HTTP/1.1 on
the standard library's ``http.client``), which costs about half the CPU per call of
httpx's default transport; proxies from the environment, and HTTP/2 if asked for,
keep httpx's own transports.

Redirects are never followed: the SDK's own default client follows them, which
would re-send a write (its secrets included) wherever a 307/308 points, or turn it
into a ``GET`` whose 2xx looks like success (301/302/303). A 3xx reaches the SDK
as an error status instead.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator


class DeadlineClient(httpx.Client):
    """An :class:`httpx.Client` that bounds the whole of each request (see the module docstring).

    :param deadline: seconds each request may take, from sending it to the last byte
        of its answer.
    :param kwargs: as for :class:`httpx.Client` (``follow_redirects`` is always false).
    """

    def __init__(self, *, deadline: float, **kwargs: Any) -> None:
        kwargs["follow_redirects"] = False
        super().__init__(**kwargs)
        self.deadline = deadline
        # No cookies are kept: the jar of the settings keeps none already, but httpx
        # still wraps every response in urllib's request/response shims to offer it
        # them (~7% of a call's CPU).
        self._cookies = _NoCookies(self._cookies)

    def _init_transport(
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = httpx.Limits(),  # noqa: B008 - never mutated; httpx passes its own
        transport: httpx.BaseTransport | None = None,
    ) -> httpx.BaseTransport:
        """httpx's transport for direct connections: :class:`.StdlibTransport` unless one was given."""
        if transport is not None:
            return transport
        if http2:
            return super()._init_transport(
                verify=verify, cert=cert, trust_env=trust_env, http1=http1, http2=http2, limits=limits
            )
        from httpx._config import create_ssl_context

        from airflow_provider_metronome.client.stdlib_transport import StdlibTransport

        return StdlibTransport(create_ssl_context(verify=verify, cert=cert, trust_env=trust_env), limits)

    def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        """Send ``request``; read its body (unless ``stream``) within the deadline.

        :param request: the request.
        :param stream: leave the body unread (it is still read within the deadline).
        :param kwargs: as for :meth:`httpx.Client.send`.
        """
        deadline = time.monotonic() + self.deadline
        limits = request.extensions.get("timeout")
        if isinstance(limits, dict):
            # No single wait may outlast the whole request.
            request.extensions["timeout"] = {
                phase: self.deadline if value is None else min(value, self.deadline)
                for phase, value in limits.items()
            }
        response = super().send(request, stream=True, **kwargs)
        response.stream = _DeadlineStream(response.stream, deadline, self.deadline, request)
        if stream:
            return response
        try:
            response.read()
        except BaseException:
            response.close()
            raise
        return response


class _NoCookies(httpx.Cookies):
    """Cookies that take none from the answers."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _DeadlineStream(httpx.SyncByteStream):
    """A response body that fails once the request's deadline has passed."""

    def __init__(self, inner: Any, deadline: float, seconds: float, request: httpx.Request) -> None:
        self._inner = inner
        self._deadline = deadline
        self._seconds = seconds
        self._request = request

    def _check(self) -> None:
        if time.monotonic() > self._deadline:
            raise httpx.ReadTimeout(
                f"the answer was not complete within {self._seconds:g}s "
                "(the timeout bounds the whole answer, not each read)",
                request=self._request,
            )

    def __iter__(self) -> Iterator[bytes]:
        self._check()
        for chunk in self._inner:
            self._check()
            yield chunk

    def close(self) -> None:
        self._inner.close()
