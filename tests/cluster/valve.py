"""A loopback proxy that lets a client's first N photo publishes through and holds the rest.

The intake sends all of a job's publishes at once and the server answers them within
milliseconds, so "some photos published, not all" is an instant no test could hit by
watching. Between the intake and the server this proxy reads the client's side of the NATS
protocol command by command (a line; ``PUB``/``HPUB`` then carry a payload whose size ends the
line, per the NATS client protocol), forwards everything up to and including the N-th
publish on ``sharpmld.jobs.*``, and from the next one on holds every byte of that connection:
the server has exactly N photos, the intake waits for the other answers. ``open()`` lets
everything through, for the connections made from then on.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

from tests.cluster.conftest import free_port

PHOTO_SUBJECTS = b"sharpmld.jobs."


class PublishValve:
    def __init__(self, upstream_port: int, limit: int) -> None:
        self.upstream = upstream_port
        self.limit: int | None = limit
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.passed = 0  # photo publishes forwarded so far, over every connection
        self.held = 0  # photo publishes seen and held back
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self) -> None:
        """From the next connection on, nothing is held."""
        with self._lock:
            self.limit = None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()  # the server is down: refused, as it would be without us
                continue
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()

    def _pipe(self, client: socket.socket, server: socket.socket) -> None:
        with self._lock:
            limit = self.limit
        pending = b""
        holding = False
        try:
            while True:
                readable, _, _ = select.select([client, server], [], [], 1.0)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is server:
                        client.sendall(data)
                        continue
                    if holding:
                        continue  # held for good: this connection ends with the server
                    pending += data
                    out, pending, holding = self._through(pending, limit)
                    server.sendall(out)
        except (OSError, ValueError):
            return
        finally:
            for s in (client, server):
                s.close()

    def _through(self, pending: bytes, limit: int | None) -> tuple[bytes, bytes, bool]:
        """The complete commands of ``pending`` that may pass, what is left, and whether to hold."""
        out = b""
        while True:
            end = pending.find(b"\r\n")
            if end < 0:
                return out, pending, False
            line = pending[:end].split()
            size = end + 2
            photo = False
            if line and line[0].upper() in (b"PUB", b"HPUB"):
                size += int(line[-1]) + 2
                photo = line[1].startswith(PHOTO_SUBJECTS)
            if len(pending) < size:
                return out, pending, False
            if photo:
                with self._lock:
                    if limit is not None and self.passed >= limit:
                        self.held += 1
                        return out, b"", True
                    self.passed += 1
            out += pending[:size]
            pending = pending[size:]
