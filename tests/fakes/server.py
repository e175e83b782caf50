"""Run an ASGI app on real loopback HTTP (uvicorn in a background thread)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn


class QuickServer(uvicorn.Server):
    """uvicorn that stops as soon as asked. Plain uvicorn looks at ``should_exit`` every 0.1 s
    and then sleeps another 0.1 s before closing connections: 0.15 s of wall time per stopped
    server, paid by some 450 servers a suite run. Connections still open get up to
    ``timeout_graceful_shutdown`` to finish; whatever is left is cancelled as the loop ends."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await super().startup(sockets)

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):  # on_tick keeps the Date header current
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        deadline = self._loop.time() + float(self.config.timeout_graceful_shutdown or 0)
        while self.server_state.connections and self._loop.time() < deadline:  # noqa: ASYNC110 - a set, no event
            await asyncio.sleep(0.005)

    def stop(self) -> None:
        """From any thread, once ``started``."""
        self.should_exit = True
        self._loop.call_soon_threadsafe(self._stopping.set)


@contextmanager
def serve(app: Any, *, startup_timeout: float = 10.0, **options: Any) -> Iterator[str]:
    """Yield the base URL of ``app`` served on 127.0.0.1 with an OS-assigned port; ``options``
    go to uvicorn, over the defaults below (e.g. ``ssl_certfile``/``ssl_keyfile``: then the
    URL is https)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    defaults: dict[str, Any] = {
        "log_level": "error",
        "lifespan": "off",
        "access_log": False,
        "timeout_graceful_shutdown": 1,
        "timeout_keep_alive": 30,
    }
    config = uvicorn.Config(app, **(defaults | options))
    server = QuickServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("fake server did not start")
        time.sleep(0.005)
    try:
        yield f"{'https' if options.get('ssl_certfile') else 'http'}://127.0.0.1:{port}"
    finally:
        server.stop()
        thread.join(timeout=5)
        sock.close()


@asynccontextmanager
async def serve_here(app: Any, sock: socket.socket) -> AsyncIterator[str]:
    """Serve ``app`` on the bound ``sock`` in this event loop (an app whose container's
    connections belong to this loop); yield its base URL."""
    server = QuickServer(uvicorn.Config(app, log_level="error", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            raise RuntimeError("server did not start") from task.exception()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.stop()
        await task
        sock.close()
