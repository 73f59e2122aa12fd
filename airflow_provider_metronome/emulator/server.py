"""Run the emulator under uvicorn."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class ResettableHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's protocol, exposing the transport so a fault can reset the connection.

    ASGI gives an app no way to drop a connection without an answer; the injected
    "connection reset" fault needs exactly that, so the transport rides along in the
    request's ``scope["state"]``.
    """

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["state"]["emulator_transport"] = self.transport


def serve(app: Any, host: str, port: int, *, ready: Any = None) -> None:
    """Serve ``app`` until SIGINT/SIGTERM.

    :param app: the ASGI app.
    :param host: interface to bind (use loopback).
    :param port: TCP port (0 picks a free one).
    :param ready: called with the bound port once the server listens.
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=ResettableHttpToolsProtocol,
        loop="uvloop",
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,
        backlog=1024,
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.01)
        if ready is not None:
            sockets = [s for srv in server.servers for s in srv.sockets]
            ready(sockets[0].getsockname()[1])
        await task

    import uvloop

    uvloop.run(run())
