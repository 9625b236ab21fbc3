"""The ``circuit-atlas`` command line.

Every command that needs the database opens the store from the global connection options
(``--uri/--user/--database/--data-dir`` or ``NEO4J_*``); with no URI it uses the zero-setup
local server. Errors are one line on stderr and a non-zero exit; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pandas as pd
from tqdm.auto import tqdm

from circuit_atlas.cli_attribute import attribute
from circuit_atlas.cli_compare import compare, consensus
from circuit_atlas.cli_queries import query
from circuit_atlas.cli_roi import roi
from circuit_atlas.cli_scores import prune, score
from circuit_atlas.cli_support import StoreContext, parse_param, pass_ctx, print_table
from circuit_atlas.errors import CircuitAtlasError, LocalServerError
from circuit_atlas.ingest import IMPORTERS, load_graph
from circuit_atlas.ingest.registry import graph_file_suffixes
from circuit_atlas.local_server import (
    LocalServer,
    _pid_alive,
    default_data_dir,
    running_shared_server,
)
from circuit_atlas.process_exit import exit_process
from circuit_atlas.progress import progress_enabled
from circuit_atlas.store import CircuitStore, ConnectionSettings

_DEBUG = False


# ---------------------------------------------------------------------- group
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--uri", help="Bolt URI of a Neo4j 5 server [env NEO4J_URI]; default: local server.")
@click.option("--user", help="Database user [env NEO4J_USER].")
@click.option("--password", help="Database password [env NEO4J_PASSWORD; prefer the variable].")
@click.option("--database", help="Database name [env NEO4J_DATABASE].")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the local server and artifacts [env CIRCUIT_ATLAS_DATA_DIR].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(
    ctx: click.Context,
    uri: str | None,
    user: str | None,
    password: str | None,
    database: str | None,
    data_dir: Path | None,
    debug: bool,
) -> None:
    """Circuit Atlas: mechanistic-interpretability circuits in a graph database."""
    global _DEBUG
    _DEBUG = debug
    settings = ConnectionSettings.resolve(uri, user, password, database, data_dir)
    state = StoreContext(settings)
    ctx.obj = state
    ctx.call_on_close(state.close)


# ---------------------------------------------------------------------- ingest
def _expand(paths: tuple[Path, ...]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.name.endswith(graph_file_suffixes()))
            )
        else:
            files.append(path)
    return files


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(sorted(IMPORTERS)), help="Skip format detection."
)
@click.option("--graph-id", help="Store under this id (one file only).")
@click.option("--replace", is_flag=True, help="Overwrite a stored graph with the same id.")
@pass_ctx
def ingest(
    state: StoreContext,
    files: tuple[Path, ...],
    fmt: str | None,
    graph_id: str | None,
    replace: bool,
) -> None:
    """Import graph FILES (or folders of them) into the store.

    Every file is parsed and validated before anything is written, so one bad file leaves the
    store unchanged. Re-ingesting an identical graph is a no-op.
    """
    paths = _expand(files)
    if graph_id and len(paths) != 1:
        raise click.UsageError("--graph-id needs exactly one file")
    bars = progress_enabled()
    graphs = [
        load_graph(p, fmt, graph_id)
        for p in tqdm(paths, desc="parse", unit="file", disable=len(paths) < 2 or not bars)
    ]
    ids = [g.graph_id for g in graphs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise CircuitAtlasError(f"several files would be stored as graph id(s) {dupes}")
    store = state.store()
    for graph in tqdm(graphs, desc="ingest", unit="graph", disable=len(graphs) < 2 or not bars):
        result = store.write_graph(graph, replace=replace, progress=bars)
        tqdm.write(
            f"{result.graph_id}: {result.n_nodes:,} nodes, {result.n_edges:,} edges — "
            f"{result.status}"
            + (f" ({result.path}, {result.seconds:.1f} s)" if result.status != "unchanged" else "")
        )


# ---------------------------------------------------------------------- browse
@cli.command()
@click.option("--model", help="Only graphs of this model.")
@click.option("--method", help="Only graphs made by this method.")
@click.option("--source-format", help="Only graphs imported from this format.")
@click.option("--contains", help="Only graph ids containing this text.")
@click.option("--format", "out", type=click.Choice(["table", "csv", "json"]), default="table")
@pass_ctx
def graphs(
    state: StoreContext,
    model: str | None,
    method: str | None,
    source_format: str | None,
    contains: str | None,
    out: str,
) -> None:
    """List stored graphs."""
    frame = state.store().list_graphs(model, method, source_format, contains)
    print_table(frame, out)


@cli.command()
@click.argument("graph_id")
@pass_ctx
def show(state: StoreContext, graph_id: str) -> None:
    """Show one graph's metadata and node/edge counts."""
    store = state.store()
    info = store.graph_info(graph_id)
    hidden = {"metadata_json", "tokens"}
    for key in sorted(info):
        if key not in hidden:
            click.echo(f"{key:16} {info[key]}")
    if info.get("tokens"):
        click.echo(f"{'tokens':16} {info['tokens']}")
    kinds = store.query(
        "MATCH (n:Node {graph_id: $gid}) RETURN n.kind AS kind, count(*) AS nodes ORDER BY kind",
        {"gid": graph_id},
    )
    print_table(pd.DataFrame(kinds))


@cli.command()
@click.argument("graph_ids", nargs=-1, required=True)
@click.option(
    "--force",
    is_flag=True,
    help="Also delete a graph another process claims (a load or delete whose process died on "
    "another host).",
)
@pass_ctx
def rm(state: StoreContext, graph_ids: tuple[str, ...], force: bool) -> None:
    """Delete graphs (nodes, edges and artifact). Readers stop seeing a graph at once; a
    delete that is interrupted is finished when the local server next starts."""
    store = state.store()
    for graph_id in graph_ids:
        store.delete_graph(graph_id, force=force, progress=progress_enabled())
        click.echo(f"{graph_id}: deleted")


@cli.command()
@click.argument("query")
@click.option("--param", "-p", "params", multiple=True, help="name=value (JSON values parsed).")
@click.option("--write", is_flag=True, help="Allow write clauses and commit.")
@click.option("--format", "out", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds.")
@pass_ctx
def cypher(
    state: StoreContext, query: str, params: tuple[str, ...], write: bool, out: str, timeout: float
) -> None:
    """Run a Cypher QUERY (read-only unless --write); values go in as parameters."""
    values = dict(parse_param(p) for p in params)
    rows = state.store().query(query, values, write=write, timeout_s=timeout)
    print_table(pd.DataFrame(rows), out)


@cli.command()
@pass_ctx
def upgrade(state: StoreContext) -> None:
    """Add to stored graphs what a newer Circuit Atlas derives at ingest: today the path bounds
    that let strongest_paths and roi_paths prune (graphs without them get exact but slow,
    unpruned walks). Computed from each graph's exact artifact; running it again changes
    nothing."""
    store = state.store()
    missing = store.graphs_without_path_bounds()
    if not missing:
        click.echo("every graph is up to date")
        return
    for graph_id in tqdm(missing, desc="path bounds", unit="graph", disable=not progress_enabled()):
        nodes = store.add_path_bounds(graph_id)
        click.echo(f"{graph_id}: path bounds added to {nodes} nodes")


# ---------------------------------------------------------------------- local server
@cli.group()
def db() -> None:
    """Start, stop or inspect the local graph server (used when no --uri is given)."""


def _data_dir(state: StoreContext) -> Path:
    return state.settings.data_dir or default_data_dir()


@db.command("start")
@click.option("--timeout", type=float, default=120.0, show_default=True)
@pass_ctx
def db_start(state: StoreContext, timeout: float) -> None:
    """Start a shared local server in the background, so several commands can use it."""
    data_dir = _data_dir(state)
    endpoint = running_shared_server(data_dir)
    if endpoint is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(data_dir / "serve.out", "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "circuit_atlas.cli",
                    "--data-dir",
                    str(data_dir),
                    "db",
                    "serve",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while (endpoint := running_shared_server(data_dir)) is None:
            if process.poll() is not None:
                raise LocalServerError(
                    f"local server exited during start (see {data_dir / 'serve.out'})"
                )
            if time.monotonic() > deadline:
                process.terminate()
                raise LocalServerError(f"local server did not start within {timeout:.0f} s")
            time.sleep(0.2)
    click.echo(f"running: {endpoint.uri} user {endpoint.user} database {endpoint.database}")
    click.echo(f"data:    {data_dir} (password in {data_dir / 'password'})")


@db.command("serve")
@pass_ctx
def db_serve(state: StoreContext) -> None:
    """Run the local server in the foreground until interrupted (what `db start` runs)."""
    data_dir = _data_dir(state)
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = LocalServer(data_dir)
    server.start()
    try:
        store = CircuitStore(*_store_args(server))
        store.ensure_schema()
        store.remove_interrupted_loads()
        store.close()
        server.announce()
        click.echo(f"serving {server.endpoint.uri} for {data_dir}", err=True)
        while not stop["now"]:
            time.sleep(0.2)
    finally:
        server.stop()


def _store_args(server: LocalServer) -> tuple[Any, ...]:
    from neo4j import GraphDatabase

    endpoint = server.endpoint
    driver = GraphDatabase.driver(endpoint.uri, auth=(endpoint.user, endpoint.password))
    return (
        driver,
        endpoint.database,
        server.data_dir / "artifacts",
        endpoint.uri,
        endpoint.user,
        server,
        False,
    )


@db.command("stop")
@click.option("--timeout", type=float, default=60.0, show_default=True)
@pass_ctx
def db_stop(state: StoreContext, timeout: float) -> None:
    """Stop the shared local server."""
    data_dir = _data_dir(state)
    info_path = data_dir / "server.json"
    if running_shared_server(data_dir) is None:
        click.echo("not running")
        return
    pid = int(json.loads(info_path.read_text())["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            raise LocalServerError(f"local server (process {pid}) did not stop in {timeout} s")
        time.sleep(0.2)
    click.echo("stopped")


@db.command("status")
@pass_ctx
def db_status(state: StoreContext) -> None:
    """Say whether the shared local server is running, and where."""
    data_dir = _data_dir(state)
    endpoint = running_shared_server(data_dir)
    if endpoint is None:
        click.echo(f"not running (data: {data_dir})")
    else:
        click.echo(f"running: {endpoint.uri} database {endpoint.database} (data: {data_dir})")


# ---------------------------------------------------------------------- demo
@cli.command()
@click.option(
    "--model/--no-model",
    "with_model",
    default=True,
    show_default=True,
    help="Run the attribution job on SmolLM2 first (about two minutes on 2 cores).",
)
@pass_ctx
def demo(state: StoreContext, with_model: bool) -> None:
    """Run EAP-IG on a real model, ingest the bundled real graphs, and show what the store
    can answer about both."""
    from circuit_atlas.demo import run_demo
    from circuit_atlas.demo_attribution import run_attribution_demo

    attribution = run_attribution_demo(state.settings.data_dir) if with_model else None
    run_demo(state.store(), attribution)


# ---------------------------------------------------------------------- analysis commands
cli.add_command(attribute)
cli.add_command(score)
cli.add_command(prune)
cli.add_command(query)
cli.add_command(compare)
cli.add_command(consensus)
cli.add_command(roi)


# ---------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    """Console entry point: one-line errors, exit 1 (user errors) or 2 (bugs)."""
    exit_process(_run(argv))


def _run(argv: list[str] | None) -> int:
    # The driver logs each retry as a warning; with no handler Python would print them to
    # stderr, burying the one-line error. --debug shows them.
    logging.getLogger("neo4j").addHandler(logging.NullHandler())
    try:
        cli.main(args=argv, prog_name="circuit-atlas", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 1
    except CircuitAtlasError as exc:
        if _DEBUG:
            raise
        click.echo(f"error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # a bug: still one line unless --debug
        if _DEBUG:
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)", err=True)
        return 2
    return 0


if __name__ == "__main__":
    main()
