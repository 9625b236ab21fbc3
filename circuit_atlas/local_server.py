"""The zero-setup local graph database: ArcadeDB's Bolt server from its PyPI wheel.

Why this exists: Neo4j cannot be installed everywhere (see shared/docs/graph-backends.md), yet
users and CI need a real Bolt + Cypher server with no manual step. ArcadeDB's wheel bundles a
JRE; we start its server *inside this Python process* (JPype), on loopback, on free ports, with a
generated password kept in the data folder (mode 0600). Every query still goes through the
official ``neo4j`` driver over Bolt; being in-process additionally gives the store a fast bulk
path (the engine's ``GraphBatch`` API) that Bolt cannot match.

Data folder layout (``--data-dir`` or the user's data directory)::

    password       root password, 0600
    reader-password  password of the read-only ``reader`` user, 0600
    server.lock    flock held by the process hosting the server (one host per folder)
    server.json    where a shared server listens (written by ``circuit-atlas db start``)
    server.log     the engine's log
    arcadedb/      the engine's files
    artifacts/     exact adjacency artifacts, one per graph

One process hosts the server for a folder at a time (an exclusive ``flock``). A second process
either connects to a running shared server (``server.json``) or gets a clear error — never two
engines writing one folder.

The folder is private (0700) and its secrets 0600: graphs are research data, and the server's
root password is in it. Besides ``root``, the server has a ``reader`` user whose group may only
read records: read-only Cypher connects as it, so the server itself refuses every write, schema
change and write procedure, whatever the query's spelling (``docs/security.md``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from circuit_atlas.errors import LocalServerError

DEFAULT_DATABASE = "circuits"
ROOT_USER = "root"
READER_USER = "reader"
READER_GROUP = "reader"
BOLT_PLUGIN = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("circuit-atlas", appauthor=False))


@dataclass(frozen=True)
class BoltEndpoint:
    """How to reach a server. ``password`` is never printed (``__repr__`` hides it)."""

    uri: str
    user: str
    password: str
    database: str
    reader_user: str | None = None
    reader_password: str | None = None

    def __repr__(self) -> str:
        return f"BoltEndpoint(uri={self.uri!r}, user={self.user!r}, database={self.database!r})"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it readable by its owner only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_password(data_dir: Path, name: str = "password") -> str:
    """A password of the folder (``password``: root, ``reader-password``: the read-only user),
    created (0600) on first use."""
    private_dir(data_dir)
    path = data_dir / name
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
    os.chmod(path, 0o600)
    return path.read_text().strip()


def _endpoint(data_dir: Path, bolt_port: int, database: str) -> BoltEndpoint:
    return BoltEndpoint(
        f"bolt://127.0.0.1:{bolt_port}",
        ROOT_USER,
        read_password(data_dir),
        database,
        READER_USER,
        read_password(data_dir, "reader-password"),
    )


def running_shared_server(data_dir: Path) -> BoltEndpoint | None:
    """The endpoint of a live shared server for this folder, if ``db start`` left one running."""
    info_path = data_dir / "server.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return None
    if not _pid_alive(int(info.get("pid", -1))) or not _port_open(int(info["bolt_port"])):
        return None
    return _endpoint(data_dir, int(info["bolt_port"]), info.get("database", DEFAULT_DATABASE))


def _logging_jvm_args(data_dir: Path) -> list[str]:
    """JVM flags that send the engine's java.util.logging output to ``server.log``."""
    config = data_dir / "logging.properties"
    log_path = str(data_dir / "server.log").replace("\\", "/")
    _private_file(data_dir / "server.log")
    config.write_text(
        "handlers = java.util.logging.FileHandler\n"
        ".level = INFO\n"
        f"java.util.logging.FileHandler.pattern = {log_path}\n"
        "java.util.logging.FileHandler.append = true\n"
        "java.util.logging.FileHandler.limit = 10000000\n"
        "java.util.logging.FileHandler.count = 1\n"
        "java.util.logging.FileHandler.formatter = java.util.logging.SimpleFormatter\n"
    )
    return [f"-Djava.util.logging.config.file={config}"]


def _private_file(path: Path) -> None:
    """Create ``path`` if needed, readable by its owner only (logs can hold query text)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.chmod(path, 0o600)


@contextlib.contextmanager
def _stderr_to(path: Path) -> Generator[None, None, None]:
    """Send this process's file descriptor 2 to ``path`` for a while.

    The JVM writes ``WARNING: Using incubator modules`` (and any start-up complaint) straight to
    descriptor 2, below Python; users get one-line errors, so it goes to the server log."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.dup2(fd, 2)
        finally:
            os.close(fd)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _start_jvm(data_dir: Path) -> None:
    import arcadedb_embedded

    with _stderr_to(data_dir / "server.log"):
        arcadedb_embedded.jvm.start_jvm(jvm_args=_logging_jvm_args(data_dir))


def ensure_reader(server: Any, password: str) -> None:
    """Give the running server a ``reader`` user that may only read records.

    Its group grants ``readRecord`` on every type and nothing else: no record creation, update
    or deletion and no schema change (so a rolled-back query cannot leave new labels either).
    Checked through Bolt in ``tests/store/test_read_only.py``. Idempotent: the group is saved
    and the password set at every start, so a folder made by an older version gains the user
    and a changed ``reader-password`` file takes effect."""
    import jpype

    json_object = jpype.JClass("com.arcadedb.serializer.json.JSONObject")
    json_array = jpype.JClass("com.arcadedb.serializer.json.JSONArray")
    security = server._java_server.getSecurity()
    group = json_object(
        json.dumps(
            {
                "resultSetLimit": -1,
                "readTimeout": -1,
                "access": [],
                "types": {"*": {"access": ["readRecord"]}},
            }
        )
    )
    security.saveGroup("*", READER_GROUP, group)
    user = json_object()
    user.put("name", READER_USER)
    user.put("password", security.encodePassword(password))
    databases = json_object()
    databases.put("*", json_array(json.dumps([READER_GROUP])))
    user.put("databases", databases)
    if security.existsUser(READER_USER):
        security.updateUser(user)
    else:
        security.createUser(user)


class LocalServer:
    """An ArcadeDB server with Bolt, hosted by this process, for one data folder.

    Use as a context manager or call :meth:`start`/:meth:`stop`; an ``atexit`` hook stops it if
    the caller forgets, because a JVM left running at interpreter exit can crash the process.
    """

    _active: LocalServer | None = None  # JPype allows one JVM per process, so one server.

    def __init__(self, data_dir: Path | None = None, database: str = DEFAULT_DATABASE) -> None:
        self.data_dir = Path(data_dir or default_data_dir()).expanduser().resolve()
        self.database = database
        self._server: Any = None
        self._lock_handle: Any = None
        self.bolt_port: int | None = None
        self.http_port: int | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 60.0) -> BoltEndpoint:
        if self._server is not None:
            return self.endpoint
        if LocalServer._active is not None:
            raise LocalServerError(
                f"this process already hosts the local server for {LocalServer._active.data_dir}"
            )
        private_dir(self.data_dir)
        password = read_password(self.data_dir)
        self._acquire_lock()
        try:
            import arcadedb_embedded

            _start_jvm(self.data_dir)
            self.bolt_port, self.http_port = _free_port(), _free_port()
            server = arcadedb_embedded.create_server(
                str(self.data_dir / "arcadedb"),
                root_password=password,
                config={
                    "host": "127.0.0.1",
                    "http_port": self.http_port,
                    "server_plugins": BOLT_PLUGIN,
                    "bolt_port": self.bolt_port,
                    "server_defaultDatabases": f"{self.database}[{ROOT_USER}]",
                },
            )
            with _stderr_to(self.data_dir / "server.log"):
                server.start()
            self._server = server
            ensure_reader(server, read_password(self.data_dir, "reader-password"))
            LocalServer._active = self
            atexit.register(self.stop)
            deadline = time.monotonic() + timeout_s
            while not _port_open(self.bolt_port):
                if time.monotonic() > deadline:
                    raise LocalServerError(f"local server did not open Bolt within {timeout_s}s")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.stop()
            self._server = None
            LocalServer._active = None
        self._release_lock()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def endpoint(self) -> BoltEndpoint:
        if self.bolt_port is None:
            raise LocalServerError("local server is not started")
        return _endpoint(self.data_dir, self.bolt_port, self.database)

    # ------------------------------------------------------------------ engine access
    def embedded_database(self, name: str | None = None) -> Any:
        """The engine's in-process database handle, for the bulk write path."""
        if self._server is None:
            raise LocalServerError("local server is not started")
        return self._server.get_database(name or self.database)

    def create_database(self, name: str) -> None:
        """Create a database (Cypher ``CREATE DATABASE`` is not supported by ArcadeDB)."""
        if self._server is None:
            raise LocalServerError("local server is not started")
        self._server.create_database(name)

    # ------------------------------------------------------------------ sharing
    def announce(self) -> None:
        """Write ``server.json`` so other processes connect instead of starting their own."""
        info = {
            "pid": os.getpid(),
            "bolt_port": self.bolt_port,
            "http_port": self.http_port,
            "database": self.database,
            "started_at": time.time(),
        }
        path = self.data_dir / "server.json"
        path.write_text(json.dumps(info))
        os.chmod(path, 0o600)

    def _acquire_lock(self) -> None:
        handle = open(self.data_dir / "server.lock", "a+")  # noqa: SIM115 (held until stop)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise LocalServerError(
                f"the local database in {self.data_dir} is in use by {holder}; wait for it to "
                "finish, or run `circuit-atlas db start` once so several commands can share it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        self._lock_handle = handle

    def _release_lock(self) -> None:
        if self._lock_handle is not None:
            with contextlib.suppress(OSError):
                info = self.data_dir / "server.json"
                if info.exists() and json.loads(info.read_text()).get("pid") == os.getpid():
                    info.unlink()
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None
