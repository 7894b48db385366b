"""A loopback TCP proxy a test can cut and restore: a network partition on one machine.

Each accepted connection is piped to the upstream port by a thread of its own. ``cut()``
closes every connection and stops listening (new connections are refused, as across a
partition); ``restore()`` listens again on the same port. With ``delay``, what the server
sends reaches the client that much later: a slow link, or a server slow to answer under load.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

from tests.cluster.conftest import free_port


class Proxy:
    def __init__(self, upstream_port: int, delay: float = 0.0) -> None:
        self.upstream = upstream_port
        self.delay = delay
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
            listener, self._listener = self._listener, None
        for s in [*socks, *([listener] if listener else [])]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._socks += [client, server]
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is b and self.delay:
                        time.sleep(self.delay)  # the link's latency, not a wait for anything
                    peers[s].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for s in (a, b):
                s.close()
