"""The command line, run as a user would (subprocesses against the real server)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from helpers.cli import cypher_json, error_lines, run_cli
from helpers.data import bundled
from helpers.documents import malformed_documents

pytestmark = pytest.mark.backends("arcadedb", "neo4j")


def test_ingest_graphs_show_cypher_rm(bolt_env):
    ingest = run_cli(
        "ingest",
        str(bundled("bee-insect-clt.json.gz")),
        str(bundled("gpt2-ioi-eap-ig.json.gz")),
        env=bolt_env,
        check=True,
    )
    assert "abeeisatypeof-1759386939498: 266 nodes, 2,929 edges — created" in ingest.stdout
    again = run_cli("ingest", str(bundled("bee-insect-clt.json.gz")), env=bolt_env, check=True)
    assert "unchanged" in again.stdout
    listed = run_cli("graphs", "--format", "json", env=bolt_env, check=True)
    assert [g["graph_id"] for g in json.loads(listed.stdout)] == [
        "abeeisatypeof-1759386939498",
        "gpt2-ioi-eap-ig",
    ]
    shown = run_cli("show", "gpt2-ioi-eap-ig", env=bolt_env, check=True)
    assert "attention_head" in shown.stdout and "32491" in shown.stdout
    rows = cypher_json(
        bolt_env, "MATCH (n:Node {graph_id: $g}) RETURN count(n) AS n", g="gpt2-ioi-eap-ig"
    )
    assert rows == [{"n": 158}]
    run_cli("rm", "gpt2-ioi-eap-ig", env=bolt_env, check=True)
    listed = run_cli("graphs", "--format", "json", env=bolt_env, check=True)
    assert [g["graph_id"] for g in json.loads(listed.stdout)] == ["abeeisatypeof-1759386939498"]


@pytest.mark.parametrize("case", sorted(malformed_documents()))
def test_each_malformed_file_leaves_the_store_unchanged(bolt_env, tmp_path: Path, case: str):
    run_cli("ingest", str(bundled("nobel-clt.json.gz")), env=bolt_env, check=True)
    text, fragment = malformed_documents()[case]
    bad = tmp_path / f"{case}.json"
    bad.write_text(text)
    result = run_cli("ingest", str(bundled("bee-insect-clt.json.gz")), str(bad), env=bolt_env)
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: ") and fragment in lines[0]
    listed = run_cli("graphs", "--format", "json", env=bolt_env, check=True)
    assert [g["graph_id"] for g in json.loads(listed.stdout)] == ["nobelcomesfromth-1761108237891"]


def test_bad_file_among_good_ones_writes_nothing(bolt_env, tmp_path: Path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"metadata": {"slug": "x"')
    result = run_cli("ingest", str(bundled("bee-insect-clt.json.gz")), str(bad), env=bolt_env)
    assert result.returncode == 1
    lines = error_lines(result)
    assert lines == [f"error: {bad}: truncated JSON: Expecting ',' delimiter at line 1 column 26"]
    listed = run_cli("graphs", "--format", "json", env=bolt_env, check=True)
    assert json.loads(listed.stdout) == []


def test_cypher_write_needs_flag(bolt_env):
    refused = run_cli("cypher", "CREATE (:Note {t: 1})", env=bolt_env)
    assert refused.returncode == 1
    assert error_lines(refused) == [
        "error: CREATE is a write clause; queries are read-only unless you pass --write"
    ]
    run_cli("cypher", "CREATE (:Note {t: 1})", "--write", env=bolt_env, check=True)
    counted = cypher_json(bolt_env, "MATCH (n:Note) RETURN count(n) AS c")
    assert counted == [{"c": 1}]


def test_cypher_syntax_error_is_one_line(bolt_env):
    result = run_cli("cypher", "MATCH (n RETURN n", env=bolt_env)
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr


def test_wrong_password_is_one_line_and_secret_free(bolt_env):
    env = dict(bolt_env, NEO4J_PASSWORD="definitely-wrong-password")
    result = run_cli("graphs", env=env)
    assert result.returncode == 1
    user = env["NEO4J_USER"]  # 'root' on the local ArcadeDB server, 'neo4j' on Neo4j
    assert error_lines(result) == [
        f"error: the graph database at {env['NEO4J_URI']} refused the credentials for user {user!r}"
    ]
    assert "definitely-wrong-password" not in result.stderr + result.stdout


def test_stopped_server_is_one_line(bolt_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket closes
    env = dict(bolt_env, NEO4J_URI=f"bolt://127.0.0.1:{port}")
    result = run_cli("graphs", env=env)
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1
    assert lines[0].startswith(f"error: cannot reach the graph database at bolt://127.0.0.1:{port}")


def test_unknown_graph_and_bad_param(bolt_env):
    missing = run_cli("show", "nope", env=bolt_env)
    assert missing.returncode == 1 and "no graph 'nope'" in missing.stderr
    bad = run_cli("cypher", "RETURN 1", "--param", "novalue", env=bolt_env)
    assert bad.returncode == 2 and "name=value" in bad.stderr
