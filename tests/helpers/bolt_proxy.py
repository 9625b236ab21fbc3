"""A TCP relay in front of the real Bolt server that can cut a connection mid-query.

Why: ArcadeDB answers a query that exhausts its heap by dropping the Bolt connection (the
handler thread dies with OutOfMemoryError) while the server itself stays up. Filling a 4 GB
heap takes minutes, so tests cut the connection here instead, at the moment the driver sends
a query that carries ``trigger`` (for example in a parameter value): the server still runs, and
the driver sees exactly what it sees after the server-side drop.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class CuttingRelay:
    """Forwards ``127.0.0.1:<port>`` to ``target``; cuts any connection that sends ``trigger``."""

    def __init__(self, target: tuple[str, int], trigger: bytes) -> None:
        self.target, self.trigger = target, trigger
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self.target)
            self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, watch: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                # Cut before forwarding: forwarded first, a busy machine let the server's
                # answer back through before the cut, and the query succeeded (a CI failure).
                if watch and self.trigger in data:
                    self.cuts += 1
                    break
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        """Refuse new connections and cut the open ones (shutdown wakes the blocked accept)."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for end in self._open:
            with contextlib.suppress(OSError):
                end.close()
