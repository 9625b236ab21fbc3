"""``.ci/neo4j/ctl``: any password works, one starting with "-" included; logs stay small.

CI once failed to start Neo4j because a random url-safe base64 password began with "-", which
the launcher's ``set-initial-password`` call parsed as an option (1 start in 64). This starts a
second, small Neo4j with such a password, where the first one runs (the launcher is built).

The second server must be gone after ``ctl stop``. CI once ran out of disk: Neo4j's defaults
preallocate 256 MiB transaction-log files and keep two days of them, several GB over one test
run. The launcher turns that off; the same second server checks that its log files are not
preallocated.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from circuit_atlas.store.settings import env_file_values

from helpers.skips import skip_test

CTL = Path(__file__).resolve().parents[2] / ".ci" / "neo4j" / "ctl"


@pytest.mark.slow
def test_a_password_starting_with_a_dash_starts_neo4j(tmp_path):
    if not os.environ.get("CIRCUIT_ATLAS_TEST_NEO4J") or shutil.which("java") is None:
        skip_test("the Neo4j leg is off here (.ci/run turns it on where Java and Maven are)")
    password = "-starts-with-a-dash-0123456789"
    env = {**os.environ, "NEO4J_INITIAL_PASSWORD": password, "NEO4J_HEAP": "512m",
           "NEO4J_PAGECACHE": "64m"}  # fmt: skip
    home = tmp_path / "neo4j"
    try:
        started = subprocess.run(
            ["bash", str(CTL), "start", str(home)], env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr[-2000:]
        pid = int((home / "neo4j.pid").read_text())
        values = env_file_values(home / "connection.env")
        assert values["NEO4J_PASSWORD"] == password
        from neo4j import GraphDatabase

        with GraphDatabase.driver(values["NEO4J_URI"], auth=("neo4j", password)) as driver:
            records, _, _ = driver.execute_query("RETURN 1 AS one")
            assert records[0]["one"] == 1
        logs = list((home / "data" / "transactions").rglob("neostore.transaction.db.*"))
        assert logs, "no transaction logs where the launcher's layout puts them"
        assert all(log.stat().st_size < 8 << 20 for log in logs), [
            (log.name, log.stat().st_size) for log in logs
        ]
    finally:
        subprocess.run(["bash", str(CTL), "stop", str(home)], capture_output=True, timeout=120)
    # ctl once read the launcher's command line cut at $COLUMNS (80 under a test), took the live
    # server for a stale pid file and left it running: one stray JVM per test run.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
