"""The shared server's bulk path: a command hands a graph to ``db serve`` to load in-process.

Why: the engine's bulk API (``writer.write_bulk_embedded``) only exists inside the process that
hosts the server. A command that hosts its own server uses it directly; but with a shared server
(``circuit-atlas db start``, the way a team or a notebook works) every edge used to travel as
Bolt rows, 2–3× slower end to end. So the serving process also listens on a Unix socket in its
private data folder, and a command asks it, one JSON line each way, to bulk-load a graph from the
exact artifact the command has just written::

    → {"password", "database", "graphs": [{"graph_id", "token", "artifact", "sha256"}, …]}
    ← {"progress": rows}* then {"ok": true} or {"error": "…"}

What keeps it safe:

* Only the folder's owner can reach the socket (folder 0700, socket 0600), and a request must
  carry the server's root password (compared in constant time): the same secret Bolt asks for.
* The artifact is read with the reader the store always uses (NumPy without pickle, Parquet, a
  validated header and ``CircuitGraph`` checks), after its SHA-256 is checked against the one
  the command computed: no file can run code, and a file swapped in between is refused.
* The load runs only while the command's claim on the graph id holds (``status 'loading'`` and
  its ``writer_token``), so it never writes into a graph someone else owns; the command still
  flips the graph to ready itself, so readers see all of it or nothing. A command killed midway
  leaves a ``'loading'`` graph of a dead process, which the next command removes
  (``CircuitStore.remove_dead_writers_graphs``); a server killed midway removes it when it
  restarts (``remove_interrupted_loads``).
* Requests are served one at a time.

A server without the socket (an older version, or one started some other way) just means the
command writes over Bolt, as before.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from circuit_atlas.errors import StoreError

SOCKET_NAME = "bulk.sock"
MAX_REQUEST_BYTES = 16 << 20  # a batch of many graphs names each (~300 bytes a graph)
# A Unix socket path is limited to ~107 bytes; a longer data folder gets no bulk channel.
MAX_SOCKET_PATH = 100


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


class BulkLoadFailed(StoreError):
    """The shared server refused or failed a bulk load; nothing of it is visible to readers."""


# --------------------------------------------------------------------------- client
class BulkChannel:
    """A command's side: ask the shared server to bulk-load a claimed graph's artifact."""

    def __init__(self, path: Path, password: str) -> None:
        self.path = path
        self._password = password

    @classmethod
    def find(cls, data_dir: Path, password: str) -> BulkChannel | None:
        """The channel of the shared server of ``data_dir``, if it serves one."""
        path = socket_path(data_dir)
        return cls(path, password) if path.is_socket() else None

    def reachable(self) -> bool:
        """Whether a server listens on the socket (a stale one, left by a killed server, does
        not: the command then writes over Bolt)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.path))
            except OSError:
                return False
        return True

    def load(
        self,
        database: str,
        graphs: list[tuple[str, str, Path | None, str]],
        advance: Callable[[int], Any] | None = None,
    ) -> None:
        """Load claimed graphs, given as (graph id, claim token, artifact, its SHA-256), in one
        engine batch."""
        request = {
            "password": self._password,
            "database": database,
            "graphs": [
                {"graph_id": gid, "token": token, "artifact": str(artifact), "sha256": sha}
                for gid, token, artifact, sha in graphs
            ],
        }
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            try:
                connection.connect(str(self.path))
            except OSError as exc:
                raise BulkLoadFailed(
                    f"the shared server's bulk channel is unreachable: {exc}"
                ) from None
            with connection.makefile("rwb") as stream:
                stream.write(json.dumps(request).encode() + b"\n")
                stream.flush()
                for line in stream:
                    reply = json.loads(line)
                    if "progress" in reply:
                        if advance is not None:
                            advance(int(reply["progress"]))
                    elif reply.get("ok"):
                        return
                    else:
                        reason = reply.get("error", "no reason given")
                        raise BulkLoadFailed(f"the shared server refused the bulk load: {reason}")
        raise BulkLoadFailed("the shared server closed the bulk channel before finishing the load")


# --------------------------------------------------------------------------- server
def _graph_claimed(database: Any, graph_id: str, token: str) -> bool:
    rows = database.query(
        "sql",
        "SELECT count(*) AS n FROM Graph WHERE graph_id = ? AND writer_token = ? AND status = ?",
        graph_id,
        token,
        "loading",
    )
    return any(int(dict(row.to_dict())["n"]) == 1 for row in rows)


def serve_request(
    server: Any, password: str, request: dict[str, Any], send: Callable[[dict[str, Any]], None]
) -> None:
    """Check one request and load its graph with the engine; raise ``BulkLoadFailed`` on a
    refusal (the caller replies with its message)."""
    from circuit_atlas.errors import ArtifactUnavailable
    from circuit_atlas.store.artifact import read_artifact
    from circuit_atlas.store.writer import write_bulk_embedded

    given = request.get("password")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), password.encode()):
        raise BulkLoadFailed("wrong password")
    fields = ("graph_id", "token", "artifact", "sha256")
    items = request.get("graphs")
    if (
        not isinstance(request.get("database"), str)
        or not isinstance(items, list)
        or not items
        or not all(
            isinstance(i, dict) and all(isinstance(i.get(f), str) for f in fields) for i in items
        )  # fmt: skip
    ):
        raise BulkLoadFailed(
            f"a request needs a database and a list of graphs with string {', '.join(fields)}"
        )
    try:
        database = server.embedded_database(request["database"])
    except Exception as exc:  # the engine's own message names the database
        raise BulkLoadFailed(f"no database {request['database']!r}: {exc}") from None
    graphs = []
    for item in items:
        try:
            graph = read_artifact(Path(item["artifact"]), item["sha256"])
        except ArtifactUnavailable as exc:
            raise BulkLoadFailed(str(exc)) from None
        if graph.graph_id != item["graph_id"]:
            raise BulkLoadFailed(
                f"the artifact holds graph {graph.graph_id!r}, not {item['graph_id']!r}"
            )
        if not _graph_claimed(database, graph.graph_id, item["token"]):
            raise BulkLoadFailed(f"graph {graph.graph_id!r} is not claimed by this writer")
        graphs.append(graph)
    write_bulk_embedded(database, graphs, advance=lambda n: send({"progress": n}))


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        served = cast(_Server, self.server)

        def send(reply: dict[str, Any]) -> None:
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()

        line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
        try:
            if len(line) > MAX_REQUEST_BYTES:
                raise BulkLoadFailed(f"a request is at most {MAX_REQUEST_BYTES} bytes")
            request = json.loads(line)
            if not isinstance(request, dict):
                raise BulkLoadFailed("a request is one JSON object on one line")
            with served.lock:
                serve_request(served.local_server, served.password, request, send)
        except (BulkLoadFailed, ValueError) as exc:
            with contextlib.suppress(OSError):
                send({"error": str(exc)})
            return
        except OSError:  # the command went away: its claim, and what was loaded, die with it
            return
        except Exception as exc:  # the engine failed: report it, keep serving
            with contextlib.suppress(OSError):
                send({"error": f"{type(exc).__name__}: {exc}"})
            return
        send({"ok": True})


class _Server(socketserver.UnixStreamServer):
    local_server: Any
    password: str
    lock: threading.Lock


class BulkService:
    """The serving side, run by ``db serve`` beside its Bolt server."""

    def __init__(self, local_server: Any, data_dir: Path, password: str) -> None:
        self.path = socket_path(data_dir)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._local_server = local_server
        self._password = password

    def start(self) -> bool:
        """Listen; False (and no channel) when the folder's path is too long for a socket."""
        if len(str(self.path)) > MAX_SOCKET_PATH:
            return False
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a server that died; server.lock says none runs now
        old_mask = os.umask(0o177)
        try:
            server = _Server(str(self.path), _Handler)
        finally:
            os.umask(old_mask)
        os.chmod(self.path, 0o600)
        server.local_server = self._local_server
        server.password = self._password
        server.lock = threading.Lock()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="bulk-channel", daemon=True
        )
        self._thread.start()
        return True

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
