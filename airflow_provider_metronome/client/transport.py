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
line and headers, a few hundred bytes, are read by httpcore with no hook between
reads: there the read timeout is the bound.)

The SDK reads the body inside ``httpx.Client.send`` (it streams nothing for the raw
responses this provider uses), the one method this class overrides, so the deadline
holds for the typed calls and for the SDK client of
:meth:`~airflow_provider_metronome.client.client.MetronomeClient.get_conn` alike,
with any transport (a proxy from the environment included).

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
