"""One CLI: options anywhere, one --format, the same defaults, checks before slow work."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from circuit_atlas.cli.main import cli
from circuit_atlas.cli.options import QUERY_TIMEOUT_S, print_rows
from circuit_atlas.ingest import load_graph
from circuit_atlas.queries.library import DEFAULT_TIMEOUT_S

from helpers.cli import error_lines, run_cli
from helpers.data import bundled

# Commands that print data, and so take --format table|csv|json and --json.
DATA_COMMANDS = (
    "attribute",
    "ingest",
    "graphs",
    "show",
    "cypher",
    "query",
    "score",
    "prune",
    "compare",
    "consensus",
    "roi",
    "subgraphs",
    "motifs",
)
CONNECTION = ("--uri", "--user", "--password", "--database", "--data-dir", "--debug")


def _option_names(command: click.Command) -> set[str]:
    return {name for param in command.params for name in getattr(param, "opts", [])}


def _commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")


def test_every_command_takes_the_connection_options():
    assert set(CONNECTION) <= _option_names(cli)
    for name, command in _commands(cli):
        assert set(CONNECTION) <= _option_names(command), name


@pytest.mark.parametrize("name", DATA_COMMANDS)
def test_every_data_command_has_one_format_option_and_the_json_alias(name: str):
    command = cli.commands[name]
    assert {"--format", "--json"} <= _option_names(command)
    (fmt,) = [p for p in command.params if "--format" in getattr(p, "opts", [])]
    assert isinstance(fmt.type, click.Choice) and fmt.default == "table"
    assert list(fmt.type.choices) == ["table", "csv", "json"]


# Options whose name is shared by commands that mean different things by it, so their defaults
# may differ; each says why. Any other option has one default across every command.
MEANINGS_DIFFER = {
    "--timeout": "a query's time limit (cypher, query) vs how long db start/stop wait",
    "--node-threshold": "attribute's SAE circuit: an |effect| (primary name --min-node-effect); "
    "score/prune/export: a cumulative share",
    "--edge-threshold": "as --node-threshold",
    "--method": "an attribution method, a graph filter, an ROI method",
    "--metric": "a task metric vs a comparison metric",
    "--format": "export: a file format; elsewhere: how results print",
    "--model": "demo: a stage switch; elsewhere: a model or a graph filter",
    "--features": "demo: a stage switch; train-transcoders: a count",
    "--tokens": "attribute: a prompt's token ids; train-transcoders: a count",
}


def test_an_option_has_one_default_wherever_it_means_the_same():
    defaults: dict[str, dict[str, object]] = {}
    for name, command in [("", cli), *_commands(cli)]:
        for param in command.params:
            for opt in getattr(param, "opts", []):
                defaults.setdefault(opt, {})[name] = param.default
    differing = {opt for opt, by in defaults.items() if len({repr(v) for v in by.values()}) > 1}
    assert differing - set(MEANINGS_DIFFER) == set(), {o: defaults[o] for o in differing}
    timeouts = {name: d for name, d in defaults["--timeout"].items() if name.startswith("db ")}
    assert len(set(timeouts.values())) == 1, timeouts


def test_the_same_option_has_the_same_default_everywhere():
    timeouts = {
        name: param.default
        for name in ("cypher", "query")
        for param in cli.commands[name].params
        if param.name == "timeout"
    }
    assert timeouts == {"cypher": QUERY_TIMEOUT_S, "query": QUERY_TIMEOUT_S}
    assert DEFAULT_TIMEOUT_S == QUERY_TIMEOUT_S  # queries.library.run_query from Python


def test_long_cells_are_cut_in_tables_but_kept_in_csv_and_json(capsys):
    prompts = [f"prompt number {i} with some words" for i in range(60)]
    print_rows([{"roi": 0, "prompts": prompts}, {"roi": 1, "prompts": ["short"]}])
    table = capsys.readouterr().out
    assert max(len(line) for line in table.splitlines()) < 80
    print_rows([{"roi": 0, "prompts": prompts}], "json")
    assert json.loads(capsys.readouterr().out)[0]["prompts"] == prompts


def test_connection_options_work_after_the_subcommand(bolt_env: dict[str, str], tmp_path: Path):
    """`demo --data-dir D` failed with "No such option": now every command takes them."""
    env = {k: v for k, v in bolt_env.items() if not k.startswith("NEO4J_")}
    connection = [
        "--uri", bolt_env["NEO4J_URI"], "--user", bolt_env["NEO4J_USER"],
        "--password", bolt_env["NEO4J_PASSWORD"], "--database", bolt_env["NEO4J_DATABASE"],
    ]  # fmt: skip
    run_cli("ingest", str(bundled("dollar.json.gz")), *connection, env=env, check=True)
    after = run_cli("graphs", "--format", "json", *connection, env=env, check=True)
    before = run_cli(*connection, "graphs", "--json", env=env, check=True)
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert [g["graph_id"] for g in json.loads(after.stdout)] == ["gemma-dollar"]
    status = run_cli("db", "status", "--data-dir", str(tmp_path / "elsewhere"), env=env, check=True)
    assert str(tmp_path / "elsewhere") in status.stdout


@pytest.mark.backends("arcadedb", "neo4j")
def test_json_alias_and_format_csv_contradict(bolt_env: dict[str, str]):
    result = run_cli("graphs", "--json", "--format", "csv", env=bolt_env)
    assert result.returncode == 2 and "contradict" in result.stderr


@pytest.mark.backends("arcadedb", "neo4j")
def test_server_notifications_stay_off_the_terminal(bolt_env: dict[str, str]):
    """Neo4j warns about a property key it has never seen, and the driver logs it; with no
    logging configured, Python's last-resort handler printed that on stderr, in the commands
    (until the CLI's NullHandler) and for Python users (until the store's)."""
    query = "MATCH (n) WHERE n.a_key_no_graph_has_9f3 = 1 RETURN count(n) AS n"
    command = run_cli("cypher", query, env=bolt_env, check=True)
    assert command.stderr.strip() == "", command.stderr
    script = (
        "from circuit_atlas.store.circuit_store import open_store\n"
        "with open_store() as store:\n"
        f"    print(store.query({query!r}))\n"
    )
    api = subprocess.run([sys.executable, "-c", script], env=bolt_env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert api.returncode == 0 and api.stderr.strip() == "", api.stderr


@pytest.mark.backends("arcadedb", "neo4j")
def test_cypher_write_reports_what_it_changed(bolt_env: dict[str, str]):
    result = run_cli(
        "cypher", "CREATE (:Note {text: $t})", "--param", "t=hello", "--write", env=bolt_env
    )
    assert result.returncode == 0, result.stderr
    assert "committed: nodes created: 1, properties set: 1" in result.stderr


@pytest.mark.backends("arcadedb", "neo4j")
def test_show_prints_dates_and_offers_json(bolt_env: dict[str, str]):
    run_cli("ingest", str(bundled("dollar.json.gz")), env=bolt_env, check=True)
    table = run_cli("show", "gemma-dollar", env=bolt_env, check=True).stdout
    assert re.search(r"^ingested_at\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", table, re.M), table
    assert re.search(r"^nodes: feature\s+705$", table, re.M)
    shown = json.loads(run_cli("show", "gemma-dollar", "--json", env=bolt_env, check=True).stdout)
    assert shown["graph"]["n_nodes"] == 829
    assert {"kind": "feature", "nodes": 705} in shown["nodes_by_kind"]


@pytest.mark.backends("arcadedb", "neo4j")
def test_folder_ingest_is_all_or_nothing(bolt_env: dict[str, str], tmp_path: Path):
    """A conflict in a later file used to leave the earlier files written."""
    folder = tmp_path / "graphs"
    folder.mkdir()
    for name in ("dollar.json.gz", "nobel-clt.json.gz"):
        shutil.copy(bundled(name), folder / name)
    taken = load_graph(bundled("nobel-clt.json.gz")).graph_id
    run_cli(
        "ingest", str(bundled("bee-insect-clt.json.gz")), "--graph-id", taken, env=bolt_env,
        check=True,
    )  # fmt: skip
    result = run_cli("ingest", str(folder), env=bolt_env)
    assert result.returncode == 1
    (line,) = error_lines(result)
    assert line.startswith("error: nothing written") and taken in line and "--replace" in line
    stored = json.loads(run_cli("graphs", "--json", env=bolt_env, check=True).stdout)
    assert [g["graph_id"] for g in stored] == [taken]  # gemma-dollar was not written
    replaced = run_cli("ingest", str(folder), "--replace", "--json", env=bolt_env, check=True)
    statuses = {r["graph_id"]: r["status"] for r in json.loads(replaced.stdout)}
    assert statuses == {"gemma-dollar": "created", taken: "replaced"}


@pytest.mark.backends("arcadedb", "neo4j")
def test_ingest_reports_missing_paths_and_empty_folders_first(bolt_env, tmp_path: Path):
    missing = run_cli("ingest", str(bundled("dollar.json.gz")), str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run_cli("ingest", str(tmp_path / "empty"), env=bolt_env)
    assert empty.returncode == 2 and "holds no graph files" in empty.stderr


@pytest.mark.parametrize(
    ("task_text", "model", "expected"),
    [
        (None, "smollm2-135m", "does not exist"),  # task file missing: said before loading
        ("clean,corrupted\na,b\n", "smollm2-135m", "has no answer columns"),
        ("clean,corrupted,answer,foil\na,b,c,d\n", "missing-config.json", "does not exist"),
    ],
)
def test_attribute_checks_its_inputs_before_loading_the_model(
    tmp_path: Path, task_text: str | None, model: str, expected: str
):
    task = tmp_path / "task.csv"
    if task_text is not None:
        task.write_text(task_text)
    started = time.monotonic()
    result = run_cli("attribute", "--model", model, "--task", str(task), "--no-store",
                     "--out", str(tmp_path / "out.json"))  # fmt: skip
    assert result.returncode == 1 and expected in result.stderr, result.stderr
    assert time.monotonic() - started < 30  # SmolLM2 alone takes minutes to load here


def test_attribute_refuses_a_graph_id_the_store_cannot_hold(tmp_path: Path):
    task = tmp_path / "task.csv"
    task.write_text("clean,corrupted,answer,foil\na,b,c,d\n")
    result = run_cli("attribute", "--model", "smollm2-135m", "--task", str(task),
                     "--graph-id", "x" * 300)  # fmt: skip
    assert result.returncode == 1 and "longer than 256 bytes" in result.stderr
