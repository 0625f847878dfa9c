"""A TCP proxy that holds every chunk for a fixed delay each way (not a test).

It stands in for a database server on another machine, where each round trip costs
what the network does (0.2–1 ms in one data centre), on a VM that has no `netem`
queueing discipline. Threads, not an event loop: epoll waits in whole milliseconds,
which made an asyncio proxy's 1 ms round trip 2.4 ms. Each direction of a connection
has a reader, which stamps each chunk as it arrives, and a sender, which sends it
`one_way_ms` after that (`time.sleep` is good to ~0.1 ms here); chunks keep their order.

    with LatencyProxy(target_port, one_way_ms=0.5) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/db"
"""

from __future__ import annotations

import contextlib
import queue
import socket
import sys
import threading
import time
from types import TracebackType


class LatencyProxy:
    def __init__(self, target_port: int, one_way_ms: float) -> None:
        self.target_port = target_port
        self.delay = one_way_ms / 1000
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []  # every connection's, closed at exit
        self._lock = threading.Lock()

    def __enter__(self) -> LatencyProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # (closed at exit)
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, server]
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(client, server)
            self._pipe(server, client)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(source, chunks), daemon=True).start()
        threading.Thread(target=self._send, args=(sink, chunks), daemon=True).start()

    def _read(self, source: socket.socket, chunks: queue.SimpleQueue[tuple[float, bytes]]) -> None:
        data = b"-"
        while data:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            chunks.put((time.monotonic() + self.delay, data))

    def _send(self, sink: socket.socket, chunks: queue.SimpleQueue[tuple[float, bytes]]) -> None:
        while True:
            due, data = chunks.get()
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
            except OSError:
                return


def main() -> None:
    """`latency_proxy.py TARGET_PORT ONE_WAY_MS`: serve until killed, in a process of its
    own (so its CPU is counted apart: `cpu_budget.py`); prints its port."""
    with LatencyProxy(int(sys.argv[1]), float(sys.argv[2])) as proxy:
        print(proxy.port, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
