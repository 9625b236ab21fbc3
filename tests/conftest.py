"""Shared fixtures: one real local Bolt server (ArcadeDB from its wheel) for the whole session.

Nothing here is mocked: stores talk Bolt to a real server. Each test that needs isolation gets
its own database on that server (``fresh_store``).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # 2 cores; and see circuit_atlas/native_threads
os.environ.setdefault("OMP_NUM_THREADS", "1")

from circuit_atlas.local_server import LocalServer  # noqa: E402
from circuit_atlas.store import CircuitStore, ConnectionSettings  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_GRAPHS = SHARED / "graphs"
_counter = itertools.count()


def bundled(name: str) -> Path:
    """A real example graph shipped inside the package (see circuit_atlas/data/SOURCES.md)."""
    return Path(str(resources.files("circuit_atlas") / "data" / name))


def needs_shared() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not SHARED_GRAPHS.exists(), reason="../shared/data is absent")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> LocalServer:
    data_dir = tmp_path_factory.mktemp("server")
    local = LocalServer(data_dir)
    local.start()
    yield local
    local.stop()


def _open(server: LocalServer, database: str, artifacts: Path) -> CircuitStore:
    endpoint = server.endpoint
    settings = ConnectionSettings(
        uri=endpoint.uri,
        user=endpoint.user,
        password=endpoint.password,
        database=database,
        data_dir=server.data_dir,
        artifact_dir=artifacts,
        read_user=endpoint.reader_user,
        read_password=endpoint.reader_password,
    )
    store = CircuitStore.open(settings)
    store.local_server = server  # same process hosts it: enables the bulk path
    return store


@pytest.fixture
def fresh_store(server: LocalServer, tmp_path: Path) -> CircuitStore:
    """A store on a new, empty database of the session server."""
    name = f"t{next(_counter)}_{os.getpid()}"
    server.create_database(name)
    store = _open(server, name, tmp_path / "artifacts")
    yield store
    store.close()


@pytest.fixture
def bolt_env(server: LocalServer, tmp_path: Path) -> dict[str, str]:
    """Environment for a CLI subprocess that talks to a fresh database of the session server."""
    name = f"cli{next(_counter)}_{os.getpid()}"
    server.create_database(name)
    endpoint = server.endpoint
    env = dict(os.environ)
    env.update(
        NEO4J_URI=endpoint.uri,
        NEO4J_USER=endpoint.user,
        NEO4J_PASSWORD=endpoint.password,
        NEO4J_DATABASE=name,
        CIRCUIT_ATLAS_READ_USER=endpoint.reader_user or "",
        CIRCUIT_ATLAS_READ_PASSWORD=endpoint.reader_password or "",
        CIRCUIT_ATLAS_DATA_DIR=str(tmp_path / "cli-data"),
    )
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, check: bool = False
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "circuit_atlas.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"circuit-atlas {' '.join(args)} failed:\n{result.stderr}")
    return result


def cypher_json(env: dict[str, str], query: str, **params: str) -> list[dict]:
    """Rows of ``circuit-atlas cypher QUERY --format json`` run as a user would."""
    args = [arg for name, value in params.items() for arg in ("--param", f"{name}={value}")]
    result = run_cli("cypher", query, *args, "--format", "json", env=env, check=True)
    return json.loads(result.stdout)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr lines that are ours (the JVM may print its own warnings in local mode)."""
    return [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith("WARNING: Using incubator")
    ]


_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the run without JPype's JVM shutdown, which can SIGSEGV after every test passed
    (see ``circuit_atlas/process_exit.py``). Runs last, after pytest has printed everything."""
    from circuit_atlas.process_exit import exit_process

    if _exit_status:
        exit_process(_exit_status[-1])
