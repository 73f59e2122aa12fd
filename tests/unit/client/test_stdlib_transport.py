"""The standard library transport against real sockets: keep-alive, its bound, failures as httpx's."""

from __future__ import annotations

import gzip
import shutil
import socket
import ssl
import subprocess
import threading
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.client.stdlib_transport import StdlibTransport
from tests.unit.client.raw_server import RawServer, http_answer, read_request

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

TIMEOUTS = {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}


def keep_alive(
    answer: bytes, *, server: list[RawServer], delay: float = 0.0
) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        while read_request(conn):
            with server[0].lock:
                server[0].in_flight += 1
                server[0].most_in_flight = max(server[0].most_in_flight, server[0].in_flight)
            time.sleep(delay)
            with server[0].lock:
                server[0].in_flight -= 1
            conn.sendall(answer)

    return handle


@pytest.fixture
def transport() -> Iterator[StdlibTransport]:
    t = StdlibTransport(
        ssl.create_default_context(), httpx.Limits(max_connections=4, max_keepalive_connections=4)
    )
    yield t
    t.close()


def _get(transport: StdlibTransport, url: str, path: str = "/v1/customers") -> httpx.Response:
    request = httpx.Request("GET", f"{url}{path}", extensions={"timeout": TIMEOUTS})
    response = transport.handle_request(request)
    response.read()
    return response


def test_one_connection_serves_one_request_after_another(transport: StdlibTransport) -> None:
    holder: list[RawServer] = []
    with RawServer(keep_alive(http_answer(), server=holder)) as server:
        holder.append(server)
        answers = [_get(transport, server.url) for _ in range(5)]
    assert [a.json() for a in answers] == [{"ok": True}] * 5
    assert server.connections == 1


def test_requests_in_flight_stay_within_max_connections() -> None:
    holder: list[RawServer] = []
    t = StdlibTransport(ssl.create_default_context(), httpx.Limits(max_connections=2))
    with RawServer(keep_alive(http_answer(), server=holder, delay=0.05)) as server:
        holder.append(server)
        threads = [threading.Thread(target=_get, args=(t, server.url)) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    t.close()
    assert server.most_in_flight == 2
    assert server.connections == 2, "the two connections are reused by the waiting requests"


def test_a_request_waits_no_longer_than_the_pool_timeout() -> None:
    holder: list[RawServer] = []
    t = StdlibTransport(ssl.create_default_context(), httpx.Limits(max_connections=1))
    with RawServer(keep_alive(http_answer(), server=holder, delay=1.0)) as server:
        holder.append(server)
        busy = threading.Thread(target=_get, args=(t, server.url))
        busy.start()
        time.sleep(0.2)
        request = httpx.Request("GET", f"{server.url}/", extensions={"timeout": {**TIMEOUTS, "pool": 0.1}})
        with pytest.raises(httpx.PoolTimeout):
            t.handle_request(request)
        busy.join()
    t.close()


def test_a_connection_the_server_closed_while_idle_is_not_reused(transport: StdlibTransport) -> None:
    def handle(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(http_answer())  # keep-alive promised, then closed anyway

    with RawServer(handle) as server:
        first = _get(transport, server.url)
        time.sleep(0.1)
        second = _get(transport, server.url)
    assert first.json() == second.json() == {"ok": True}
    assert server.connections == 2


def test_an_idle_connection_past_the_keepalive_expiry_is_closed() -> None:
    holder: list[RawServer] = []
    t = StdlibTransport(ssl.create_default_context(), httpx.Limits(keepalive_expiry=0.05))
    with RawServer(keep_alive(http_answer(), server=holder)) as server:
        holder.append(server)
        _get(t, server.url)
        time.sleep(0.1)
        _get(t, server.url)
    t.close()
    assert server.connections == 2


def test_an_answer_not_read_to_its_end_never_goes_back_to_the_pool(transport: StdlibTransport) -> None:
    holder: list[RawServer] = []
    with RawServer(keep_alive(http_answer(b"x" * 200_000), server=holder)) as server:
        holder.append(server)
        request = httpx.Request("GET", f"{server.url}/", extensions={"timeout": TIMEOUTS})
        response = transport.handle_request(request)
        next(response.stream.__iter__())  # type: ignore[union-attr]
        response.close()
        assert len(_get(transport, server.url).content) == 200_000
    assert server.connections == 2


def test_chunked_and_gzip_answers_are_decoded(transport: StdlibTransport) -> None:
    packed = gzip.compress(b'{"data":[1,2,3]}')
    chunked = (
        b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (packed[:10], packed[10:]))
        + b"0\r\n\r\n"
    )
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"

    def handle(conn: socket.socket) -> None:
        while read_request(conn):
            conn.sendall(head + chunked)

    with RawServer(handle) as server:
        assert _get(transport, server.url).json() == {"data": [1, 2, 3]}
        assert _get(transport, server.url).json() == {"data": [1, 2, 3]}
    assert server.connections == 1


def test_the_request_arrives_as_httpx_built_it(transport: StdlibTransport) -> None:
    seen: list[bytes] = []

    def handle(conn: socket.socket) -> None:
        data = b""
        while not data.endswith(b'{"a":1}'):
            data += conn.recv(65536)
        seen.append(data)
        conn.sendall(http_answer())

    with RawServer(handle) as server:
        request = httpx.Request(
            "POST", f"{server.url}/v1/x?q=1", headers={"Authorization": "Bearer t", "X-Two": "2"},
            content=b'{"a":1}', extensions={"timeout": TIMEOUTS},
        )  # fmt: skip
        transport.handle_request(request).read()
    head = seen[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /v1/x?q=1 HTTP/1.1"
    headers = {k.lower(): v for k, _, v in (line.partition(b": ") for line in head[1:])}
    assert headers[b"host"] == f"127.0.0.1:{server.port}".encode()
    assert headers[b"authorization"] == b"Bearer t"
    assert headers[b"x-two"] == b"2"
    assert headers[b"content-length"] == b"7"
    assert len(head) - 1 == len(headers) == 4, "httpx's headers, nothing added, none twice"
    assert seen[0].endswith(b'\r\n\r\n{"a":1}')


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(transport: StdlibTransport) -> None:
    request = httpx.Request("GET", "http://127.0.0.1:9/", headers={"X-Bad": "a\r\nX-Injected: 1"})
    with pytest.raises(httpx.LocalProtocolError, match="X-Bad"):
        transport.handle_request(request)


# -- failures, as httpx names them (the retry policy and the unknown-outcome rules rely on it) --


def test_a_refused_connection_is_a_connect_error(transport: StdlibTransport) -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(httpx.ConnectError):
        _get(transport, f"http://127.0.0.1:{port}")


def test_no_answer_within_the_read_timeout_is_a_read_timeout(transport: StdlibTransport) -> None:
    def handle(conn: socket.socket) -> None:
        read_request(conn)
        time.sleep(1.0)

    with RawServer(handle) as server:
        request = httpx.Request("GET", f"{server.url}/", extensions={"timeout": {**TIMEOUTS, "read": 0.2}})
        with pytest.raises(httpx.ReadTimeout):
            transport.handle_request(request)


def test_a_server_that_hangs_up_without_answering_is_a_protocol_error(transport: StdlibTransport) -> None:
    def handle(conn: socket.socket) -> None:
        read_request(conn)

    with RawServer(handle) as server, pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        _get(transport, server.url)


def test_a_body_cut_short_is_a_protocol_error_and_the_connection_is_dropped(
    transport: StdlibTransport,
) -> None:
    def handle(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(http_answer(b'{"ok":true}')[:-4])

    with RawServer(handle) as server, pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        _get(transport, server.url)
    assert not transport._idle


def test_garbage_instead_of_a_status_line_is_a_protocol_error(transport: StdlibTransport) -> None:
    def handle(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    with RawServer(handle) as server, pytest.raises(httpx.RemoteProtocolError):
        _get(transport, server.url)


def test_other_schemes_are_refused(transport: StdlibTransport) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        transport.handle_request(httpx.Request("GET", "ftp://127.0.0.1/x"))


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is installed with Debian's base system"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _tls_server(cert: Path, key: Path) -> RawServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            while read_request(tls):
                tls.sendall(http_answer())

    return RawServer(handle)


def test_https_checks_the_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    trusting = StdlibTransport(ssl.create_default_context(cafile=str(cert)), httpx.Limits())
    default = StdlibTransport(ssl.create_default_context(), httpx.Limits())
    with _tls_server(cert, key) as server:
        url = f"https://127.0.0.1:{server.port}"
        assert _get(trusting, url).json() == {"ok": True}
        assert _get(trusting, url).json() == {"ok": True}
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            _get(default, url)
    assert server.connections == 2  # one kept alive for the trusting transport, one refused
    trusting.close()
    default.close()


def test_the_sni_hostname_extension_names_the_server(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            while read_request(tls):
                tls.sendall(http_answer())

    t = StdlibTransport(ssl.create_default_context(cafile=str(cert)), httpx.Limits())
    with RawServer(handle) as server:
        request = httpx.Request(
            "GET", f"https://127.0.0.1:{server.port}/",
            extensions={"timeout": TIMEOUTS, "sni_hostname": "localhost"},
        )  # fmt: skip
        assert t.handle_request(request).read() == b'{"ok":true}'
    t.close()
    assert names == ["localhost"], "sent as SNI, and the certificate checked against it"


def test_the_metronome_client_sends_through_it() -> None:
    client = MetronomeClient("http://127.0.0.1:9", "tok_stdlib_transport_0a1b2c3d")
    try:
        assert isinstance(client.transport.raw()._client._transport, StdlibTransport)
    finally:
        client.close()
