"""Shared fixtures: real Bolt servers for the whole session, one leg per backend.

Nothing here is mocked: stores talk Bolt to a real server. ``fresh_store`` and ``bolt_env`` run
each test twice, against the zero-setup ArcadeDB server (a new database per test) and against
Neo4j Community 5.26 (its one ``neo4j`` database, emptied before each test). The Neo4j leg needs
``CIRCUIT_ATLAS_TEST_NEO4J`` naming the ``connection.env`` that ``.ci/neo4j/ctl start DIR`` writes
(``.ci/run`` does this); without it that leg skips, saying why. A module (or test) opts into both
legs with ``pytestmark = pytest.mark.backends("arcadedb", "neo4j")``; unmarked ones run on
ArcadeDB only.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # 2 cores; and see circuit_atlas/native_threads
os.environ.setdefault("OMP_NUM_THREADS", "1")

from circuit_atlas.local_server import LocalServer  # noqa: E402
from circuit_atlas.store import CircuitStore, ConnectionSettings  # noqa: E402
from circuit_atlas.store.settings import env_file_values  # noqa: E402

from helpers.servers import neo4j_settings  # noqa: E402
from helpers.skips import skip_test  # noqa: E402

_counter = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
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


BACKENDS = ("arcadedb", "neo4j")
NEO4J_VARIABLE = "CIRCUIT_ATLAS_TEST_NEO4J"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backends(*names): the servers the backend fixtures run this test on "
        "(default: arcadedb only)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One leg per backend for tests (or modules) marked ``backends(...)``."""
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        names = marker.args if marker is not None else ("arcadedb",)
        # With -n (pytest-xdist, --dist loadgroup) every Neo4j-leg test runs on one worker:
        # they share Neo4j's one database, which each empties first.
        legs = [
            pytest.param(name, marks=pytest.mark.xdist_group("neo4j")) if name == "neo4j" else name
            for name in names
        ]
        metafunc.parametrize("backend", legs, indirect=True)


@pytest.fixture(scope="session")
def neo4j_connection() -> dict[str, str]:
    """NEO4J_* of the Neo4j server ``.ci/neo4j/ctl start`` started, or a skip saying why."""
    path = os.environ.get(NEO4J_VARIABLE)
    if not path:
        skip_test(
            f"Neo4j leg: {NEO4J_VARIABLE} is not set (.ci/run sets it after "
            "`.ci/neo4j/ctl start DIR`, which needs Java 17 and Maven)"
        )
    return env_file_values(Path(path))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _wipe(store: CircuitStore) -> None:
    """Empty Neo4j's one database (Community has no other) in batches."""
    while store._write("MATCH (n) WITH n LIMIT 10000 DETACH DELETE n RETURN count(*) AS c")[0]["c"]:
        pass


@pytest.fixture
def fresh_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[CircuitStore]:
    """A store on an empty database: a new one of the session's ArcadeDB server, or Neo4j's."""
    if backend == "neo4j":
        store = CircuitStore.open(
            neo4j_settings(request.getfixturevalue("neo4j_connection"), tmp_path / "artifacts")
        )
        _wipe(store)
    else:
        server = request.getfixturevalue("server")
        name = f"t{next(_counter)}_{os.getpid()}"
        server.create_database(name)
        store = _open(server, name, tmp_path / "artifacts")
    yield store
    store.close()


@pytest.fixture
def bolt_env(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Environment for a CLI subprocess that talks to an empty database (see ``fresh_store``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "CIRCUIT_ATLAS"))}
    env["CIRCUIT_ATLAS_DATA_DIR"] = str(tmp_path / "cli-data")
    if backend == "neo4j":
        connection = request.getfixturevalue("neo4j_connection")
        with CircuitStore.open(neo4j_settings(connection, tmp_path / "wipe")) as store:
            _wipe(store)
        env.update(connection)
        return env
    server = request.getfixturevalue("server")
    name = f"cli{next(_counter)}_{os.getpid()}"
    server.create_database(name)
    endpoint = server.endpoint
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
