"""An httpx transport on the standard library: sockets, ``ssl`` and ``http.client``'s parser.

The SDK builds each request and reads each answer; this transport only carries them.
httpx's default transport (httpcore and h11, both pure Python) cost about half of the
client's CPU per call. Here the request goes out as httpx built it (its headers,
already checked, written as they are) in one ``sendall``, and the answer is read by
``http.client.HTTPResponse``: the standard library's status line, header, chunked
and ``Content-Length`` parsing, reading straight from the socket's buffer.

What it keeps of httpcore's behaviour:

- **Keep-alive with a bound**: at most ``max_connections`` requests in flight (the
  others wait up to the pool timeout, then fail with :class:`httpx.PoolTimeout`);
  idle connections are reused, newest first, unless idle longer than
  ``keepalive_expiry`` or closed by the server meanwhile (a readable idle socket).
- **Each wait bounded by its timeout** from the request's ``timeout`` extension:
  connect (TLS handshake included), write, read (each read of the answer).
- **httpx's exceptions**, so the SDK and the retry policy tell an unsent request
  (:class:`httpx.ConnectError`, :class:`httpx.ConnectTimeout`) from one whose outcome
  is unknown (write/read errors and timeouts, :class:`httpx.RemoteProtocolError`).
- **No connection reused after a failure** or an answer not read to its end.

TLS uses the ``ssl.SSLContext`` httpx builds from its ``verify``/``cert`` settings
(certificate and host name checked). Proxies are not handled here: httpx keeps its
own transports for them (:meth:`.transport.DeadlineClient._init_transport`).
"""

from __future__ import annotations

import collections
import http.client
import re
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator

# Bytes asked of the socket per read of an answer's body.
_CHUNK = 65_536
_DEFAULT_PORTS = {"http": 80, "https": 443}
_Origin = tuple[str, str, int]
# Characters a header may not hold (they would end it, or the whole head, early).
_UNSAFE = re.compile(rb"[\r\n\0]")
_CUT_SHORT = "peer closed connection without sending complete message body"


class StdlibTransport(httpx.BaseTransport):
    """HTTP/1.1 keep-alive connections on the standard library, shared by every thread.

    :param ssl_context: the TLS settings for ``https`` URLs.
    :param limits: ``max_connections`` (requests in flight at once; ``None``: no
        bound), ``max_keepalive_connections`` (idle connections kept) and
        ``keepalive_expiry`` (seconds an idle connection is kept).
    """

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        self.ssl_context = ssl_context
        self.max_keepalive = limits.max_keepalive_connections
        self.keepalive_expiry = limits.keepalive_expiry
        bound = limits.max_connections
        self._slots = threading.BoundedSemaphore(bound) if bound is not None else None
        # (origin, socket, idle since): appended and popped at the right end, so the
        # most recently used connection goes first (deque operations are atomic).
        self._idle: collections.deque[tuple[_Origin, socket.socket, float]] = collections.deque()
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return its answer, the body still to be read."""
        timeouts = request.extensions.get("timeout") or {}
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"{url.scheme!r} URLs are not supported", request=request)
        origin = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
        message = _message(request)
        if self._slots is not None and not self._slots.acquire(timeout=_seconds(timeouts.get("pool"))):
            raise httpx.PoolTimeout("no connection came free within the pool timeout", request=request)
        try:
            sock = self._reuse(origin) or self._connect(origin, timeouts, request)
            _set_timeout(sock, timeouts.get("write"))
            try:
                sock.sendall(message)
            except TimeoutError as err:
                raise _fail(sock, httpx.WriteTimeout, err, request) from err
            except OSError as err:
                raise _fail(sock, httpx.WriteError, err, request) from err
            _set_timeout(sock, timeouts.get("read"))
            answer = http.client.HTTPResponse(sock, method=request.method)
            try:
                answer.begin()
            except TimeoutError as err:
                raise _fail(sock, httpx.ReadTimeout, err, request) from err
            except http.client.RemoteDisconnected as err:
                gone = "Server disconnected without sending a response."
                raise _fail(sock, httpx.RemoteProtocolError, gone, request) from err
            except http.client.HTTPException as err:
                raise _fail(sock, httpx.RemoteProtocolError, err, request) from err
            except OSError as err:
                raise _fail(sock, httpx.ReadError, err, request) from err
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise
        return httpx.Response(
            answer.status,
            headers=answer.getheaders(),
            stream=_Body(self, origin, sock, answer, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason.encode("latin-1")},
        )

    def _reuse(self, origin: _Origin) -> socket.socket | None:
        """An idle connection to ``origin`` still usable, or ``None``."""
        idle = self._idle
        now = time.monotonic()
        passed: list[tuple[_Origin, socket.socket, float]] = []
        found = None
        while True:
            try:
                entry = idle.pop()
            except IndexError:
                break
            entry_origin, sock, since = entry
            if self.keepalive_expiry is not None and now - since > self.keepalive_expiry:
                sock.close()
            elif entry_origin != origin:
                passed.append(entry)
            elif _closed_by_server(sock):
                sock.close()
            else:
                found = sock
                break
        idle.extend(reversed(passed))
        return found

    def _connect(self, origin: _Origin, timeouts: dict[str, Any], request: httpx.Request) -> socket.socket:
        scheme, host, port = origin
        timeout = _seconds(timeouts.get("connect"))
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                # The handshake is part of connecting (its timeout applies); the
                # certificate and host name are checked as the context says, against
                # the name httpx's sni_hostname extension gives if any (the SDK sets it
                # for host names with an underscore).
                name = request.extensions.get("sni_hostname") or host
                sock = self.ssl_context.wrap_socket(sock, server_hostname=name)
        except TimeoutError as err:
            raise _fail(sock, httpx.ConnectTimeout, err, request) from err
        except OSError as err:  # refused, unreachable, name not resolved, TLS refused
            raise _fail(sock, httpx.ConnectError, err, request) from err
        return sock

    def _release(self, origin: _Origin, sock: socket.socket, reusable: bool) -> None:
        """The answer is done with: keep the connection for the next request, or close it."""
        try:
            if (
                reusable
                and not self._closed
                and (self.max_keepalive is None or len(self._idle) < self.max_keepalive)
            ):
                self._idle.append((origin, sock, time.monotonic()))
            else:
                sock.close()
        finally:
            if self._slots is not None:
                self._slots.release()

    def close(self) -> None:
        """Close every idle connection; connections in use close once their answer is read."""
        self._closed = True
        while True:
            try:
                _, sock, _ = self._idle.pop()
            except IndexError:
                return
            sock.close()


class _Body(httpx.SyncByteStream):
    """An answer's body, read from its connection; the connection goes back once it is all read."""

    def __init__(
        self,
        transport: StdlibTransport,
        origin: _Origin,
        sock: socket.socket,
        answer: http.client.HTTPResponse,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._sock = sock
        self._answer = answer
        self._request = request
        self._complete = False
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        answer = self._answer
        while True:
            try:
                chunk = answer.read1(_CHUNK)
            except TimeoutError as err:
                raise self._broken(httpx.ReadTimeout, str(err) or "timed out") from err
            except http.client.IncompleteRead as err:
                raise self._broken(httpx.RemoteProtocolError, _CUT_SHORT) from err
            except (http.client.HTTPException, OSError) as err:
                raise self._broken(httpx.ReadError, str(err) or type(err).__name__) from err
            if not chunk:
                if answer.length:  # read1 ends quietly where a Content-Length body is cut short
                    raise self._broken(httpx.RemoteProtocolError, _CUT_SHORT)
                self._complete = True
                return
            yield chunk

    def _broken(self, kind: type[httpx.TransportError], text: str) -> httpx.TransportError:
        """Drop the connection (never reused after a failed read); return httpx's exception."""
        self._finish(reusable=False)
        return kind(text, request=self._request)

    def close(self) -> None:
        # Reusable only once the whole answer was read and the server keeps the connection.
        self._finish(reusable=self._complete and not self._answer.will_close)

    def _finish(self, *, reusable: bool) -> None:
        if self._done:
            return
        self._done = True
        # Closing the answer closes its reader, not the socket: the connection is kept or closed next.
        self._answer.close()
        self._transport._release(self._origin, self._sock, reusable)


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _message(request: httpx.Request) -> bytes:
    """The request as sent: request line, httpx's headers as they are, body.

    :raises httpx.LocalProtocolError: a header name or value holds CR, LF or NUL.
    """
    body = request.read()
    raw = request.headers.raw
    if "Transfer-Encoding" in request.headers:  # a streamed body, now read: send its length
        raw = [(k, v) for k, v in raw if k.lower() != b"transfer-encoding"]
        raw.append((b"Content-Length", str(len(body)).encode()))
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    for key, value in raw:
        if _UNSAFE.search(key) or _UNSAFE.search(value):
            raise httpx.LocalProtocolError(f"header {key!r} holds a line break or NUL", request=request)
        lines.append(b"%s: %s" % (key, value))
    lines.append(b"")
    lines.append(body)
    return b"\r\n".join(lines)


def _set_timeout(sock: socket.socket, value: Any) -> None:
    # settimeout costs a system call: only when the timeout changes.
    seconds = _seconds(value)
    if sock.gettimeout() != seconds:
        sock.settimeout(seconds)


def _closed_by_server(sock: socket.socket) -> bool:
    """An idle connection with something to read has been closed (or broken) by the server."""
    try:
        if hasattr(select, "poll"):  # select() fails on descriptors past 1023
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _fail(
    sock: socket.socket | None, kind: type[httpx.TransportError], err: object, request: httpx.Request
) -> httpx.TransportError:
    """Close ``sock`` (it is never reused after a failure) and return httpx's exception for ``err``."""
    if sock is not None:
        sock.close()
    text = err if isinstance(err, str) else (str(err) or type(err).__name__)
    return kind(text, request=request)
