"""A TCP proxy that holds every chunk for a fixed delay each way (not a test).

It stands in for a database server on another machine, where each round trip costs
what the network does (0.2–1 ms in one data centre), on a VM that has no `netem`
queueing discipline. One asyncio loop in a thread of its own; chunks keep their order
(each is sent `delay` after it arrived, and deadlines grow).

    with LatencyProxy(target_port, one_way_ms=0.5) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/db"
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType


class LatencyProxy:
    def __init__(self, target_port: int, one_way_ms: float) -> None:
        self.target_port = target_port
        self.delay = one_way_ms / 1000
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        assert self._server is not None
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self, client_in: asyncio.StreamReader,
                     client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(client_in, server_out),
                             self._pipe(server_in, client_out), return_exceptions=True)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await source.read(65536):
                loop.call_later(self.delay, sink.write, data)
        finally:
            loop.call_later(self.delay, sink.close)
