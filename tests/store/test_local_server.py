"""The zero-setup local server: private password, one host per folder, shared mode, demo."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from circuit_atlas.ingest.attribution.model_adapter import smollm2_gguf
from circuit_atlas.local_server import LocalServer

from helpers.cli import error_lines, run_cli
from helpers.data import bundled

pytestmark = pytest.mark.slow


def local_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    env["CIRCUIT_ATLAS_DATA_DIR"] = str(data_dir)
    return env


def test_password_file_is_private(server: LocalServer):
    mode = stat.S_IMODE((server.data_dir / "password").stat().st_mode)
    assert mode == 0o600
    assert server.endpoint.password not in repr(server.endpoint)


def test_second_process_on_same_folder_gets_clear_message(server: LocalServer):
    result = run_cli("graphs", env=local_env(server.data_dir))
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1
    assert f"the local database in {server.data_dir} is in use by process {os.getpid()}" in lines[0]


def test_db_start_status_stop_and_shared_use(tmp_path: Path):
    env = local_env(tmp_path / "shared")
    assert "not running" in run_cli("db", "status", env=env, check=True).stdout
    started = run_cli("db", "start", env=env, check=True)
    try:
        assert "running: bolt://127.0.0.1:" in started.stdout
        assert "password" not in started.stdout.split("(password in")[0].lower()
        assert "running" in run_cli("db", "status", env=env, check=True).stdout
        # Two commands can now use the folder, one after another or at once.
        demo = run_cli(
            "ingest",
            str(
                Path(__file__).resolve().parents[2]
                / "circuit_atlas"
                / "data"
                / "bee-insect-clt.json.gz"
            ),
            env=env,
            check=True,
        )
        assert "created" in demo.stdout
        listed = json.loads(run_cli("graphs", "--format", "json", env=env, check=True).stdout)
        assert len(listed) == 1
    finally:
        assert "stopped" in run_cli("db", "stop", env=env, check=True).stdout
    assert "not running" in run_cli("db", "status", env=env, check=True).stdout
    # Data survives the restart, now served by a command-hosted server.
    listed = json.loads(run_cli("graphs", "--format", "json", env=env, check=True).stdout)
    assert [g["graph_id"] for g in listed] == ["abeeisatypeof-1759386939498"]


def test_demo_runs_and_its_graphs_are_queryable(tmp_path: Path):
    env = local_env(tmp_path / "demo")
    result = run_cli("demo", env=env, check=True, timeout=1200)
    assert "gemma-dollar: 829 nodes, 40,249 edges — created" in result.stdout
    assert "where things are" in result.stdout
    assert "top-22 subgraph" in result.stdout and "regions of interest" in result.stdout
    assert "embedding::3:: -> feature:18:6:10102: -> feature:20:6:5796:" in result.stdout
    report = next(line for line in result.stdout.splitlines() if "report " in line)
    assert Path(report.rsplit("report ", 1)[1]).read_text().startswith("<!doctype html>")
    rows = run_cli(
        "cypher",
        "MATCH (g:Graph) RETURN g.graph_id AS id ORDER BY id",
        "--format",
        "json",
        env=env,
        check=True,
    )
    ids = [r["id"] for r in json.loads(rows.stdout)]
    with_model = smollm2_gguf() is not None  # the README installs it; a bare checkout may not
    assert ids[:5] == [
        "abeeisatypeof-1759386939498",
        "gemma-dollar",
        "gpt2-ioi-eap-ig",
        "induction-sae-circuit",  # the sparse feature circuit through the shipped SAEs
        "nobelcomesfromth-1761108237891",
    ]
    assert "faithfulness / completeness of the top-k nodes, node vs edge ablation" in result.stdout
    quotients = [i for i in ids if i.startswith("roi-louvain-") and i.endswith("-quotient")]
    assert len(quotients) == (2 if with_model else 1)
    model_graphs = [
        "smollm2-capital-features",
        "smollm2-capital-features--pruned-0.8-0.98",
        "smollm2-ioi-eap-ig",
    ]
    assert ids[5 + len(quotients) :] == (model_graphs if with_model else [])
    if with_model:
        # the feature graph through the shipped transcoders, reported honestly
        assert "transcoders' variance explained (held out), by layer:" in result.stdout
        score = next(line for line in result.stdout.splitlines() if "replacement score" in line)
        replacement = float(score.split("replacement score ")[1].split(",")[0])
        assert 0.0 < replacement < 1.0
        assert "ROIs:" in result.stdout and "smollm2-capital-features-rois.html" in result.stdout
        # the real model answers IOI as the issue says, and its whole graph is queryable
        assert "logit difference 6.1" in result.stdout
        assert "faithfulness" in result.stdout and "CPR" in result.stdout
        counts = run_cli(
            "cypher",
            "MATCH (:Node {graph_id: $g})-[e:EDGE]->() "
            "RETURN count(e) AS edges, sum(CASE WHEN e.in_graph THEN 1 ELSE 0 END) AS circuit",
            "--param",
            "g=smollm2-ioi-eap-ig",
            "--format",
            "json",
            env=env,
            check=True,
        )
        (row,) = json.loads(counts.stdout)
        assert row["edges"] == 123_211 and 0 < row["circuit"] <= 1233
        plot = next(line for line in result.stdout.splitlines() if "faithfulness plot:" in line)
        assert Path(plot.split(": ", 1)[1]).read_bytes()[:4] == b"\x89PNG"
    again = run_cli("demo", "--no-model", env=env, check=True)
    assert "unchanged" in again.stdout


def test_a_script_that_never_closes_its_store_still_exits(tmp_path: Path):
    """Regression: a driver left open when JPype shut the JVM down crashed it and hung the exit
    (seen after an exception skipped ``close()``). Open stores are now closed at exit."""
    script = (
        "from circuit_atlas.store import open_store\n"
        f"store = open_store(data_dir={str(tmp_path / 'data')!r})\n"
        "store.query('RETURN 1 AS one')\n"
        "raise SystemExit(0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "fatal error" not in result.stdout + result.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_is_private_and_start_up_is_silent(tmp_path: Path):
    """Graphs are research data: the folder is 0700, graph files and secrets 0600. Starting
    the server prints nothing of the JVM's to the user's terminal."""
    data = tmp_path / "private"
    result = run_cli("ingest", str(bundled("bee-insect-clt.json.gz")), env=local_env(data))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert mode(data) == 0o700
    assert mode(data / "artifacts") == 0o700
    artifacts = list((data / "artifacts").glob("*.npz"))
    assert len(artifacts) == 1 and mode(artifacts[0]) == 0o600
    for secret in ("password", "reader-password", "server.log"):
        assert mode(data / secret) == 0o600, secret
    assert "Using incubator modules" in (data / "server.log").read_text()


def wait_until_running(data_dir: Path, text: str, process: subprocess.Popen[str]) -> None:
    """Block until the shared server of ``data_dir`` runs a query containing ``text``."""
    from neo4j import GraphDatabase

    from circuit_atlas.local_server import running_shared_server

    endpoint = running_shared_server(data_dir)
    assert endpoint is not None
    deadline = time.monotonic() + 240
    with GraphDatabase.driver(endpoint.uri, auth=(endpoint.user, endpoint.password)) as driver:
        while True:
            records, _, _ = driver.execute_query("SHOW TRANSACTIONS", database_=endpoint.database)
            if any(text in str(record.data()) for record in records):
                return
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the command never started its query"
            time.sleep(0.2)


def test_a_server_killed_under_a_command_gives_one_line(tmp_path: Path):
    """The shared server dies while a command uses it: one line, no driver retry warnings."""
    env = local_env(tmp_path / "killed")
    run_cli("db", "start", env=env, check=True)
    pid = json.loads((tmp_path / "killed" / "server.json").read_text())["pid"]
    slow = "UNWIND range(1, 20000000) AS i WITH i WHERE i % 7 = 0 RETURN count(*) AS c"
    process = subprocess.Popen(
        [sys.executable, "-m", "circuit_atlas.cli", "cypher", slow, "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    wait_until_running(tmp_path / "killed", "range(1, 20000000)", process)
    os.kill(pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
