"""``ingest``, ``graphs``, ``show``, ``rm``, ``cypher`` and ``upgrade``: graphs in and out of the
store, and raw Cypher over it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from circuit_atlas.cli.options import (
    StoreContext,
    format_option,
    parse_param,
    pass_ctx,
    print_rows,
    timeout_option,
)
from circuit_atlas.progress import progress_enabled

# Properties holding seconds since the epoch: shown as local date-times in tables.
TIMESTAMP_PROPERTIES = ("created_at", "claimed_at", "ingested_at", "updated_at")


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    from circuit_atlas.ingest.importers import graph_file_suffixes

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.endswith(graph_file_suffixes()))
            if not found:
                raise click.BadParameter(
                    f"{path} holds no graph files ({', '.join(graph_file_suffixes())})",
                    param_hint="FILES",
                )
            files.extend(found)
        elif not path.exists():
            raise click.BadParameter(f"{path} does not exist", param_hint="FILES")
        else:
            files.append(path)
    return files


def _importer_names() -> list[str]:
    from circuit_atlas.ingest import IMPORTERS

    return sorted(IMPORTERS)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--source-format", "--from", "fmt", help="Skip format detection (see --help).")
@click.option("--graph-id", help="Store under this id (one file only).")
@click.option("--replace", is_flag=True, help="Overwrite stored graphs with the same ids.")
@format_option
@pass_ctx
def ingest(
    state: StoreContext,
    files: tuple[Path, ...],
    fmt: str | None,
    graph_id: str | None,
    replace: bool,
    out: str,
) -> None:
    """Import graph FILES (or folders of them) into the store, all or nothing.

    Every file is parsed and validated, and every id checked against the store (a stored graph
    with other content is refused unless --replace), before anything is written. If a write
    still fails midway, the graphs this command created are removed again, so the store is as
    before (graphs it replaced stay replaced: their old content is gone). Re-ingesting an
    identical graph is a no-op. Formats: neuronpedia, eap-ig, circuit-tracer-pt.
    """
    from tqdm.auto import tqdm

    from circuit_atlas.errors import CircuitAtlasError
    from circuit_atlas.ingest import load_graph

    if fmt is not None and fmt not in _importer_names():
        raise click.BadParameter(
            f"{fmt!r} is not one of {', '.join(_importer_names())}", param_hint="--source-format"
        )
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
        raise CircuitAtlasError(
            f"nothing written: several files would be stored as graph id(s) {dupes}"
        )
    store = state.store()
    results: list[dict[str, Any]] = []
    created: list[str] = []
    bar = tqdm(total=len(graphs), desc="ingest", unit="graph", disable=len(graphs) < 2 or not bars)

    def record(result: Any) -> None:
        if result.status == "created":
            created.append(result.graph_id)
        results.append(
            {
                "graph_id": result.graph_id,
                "nodes": result.n_nodes,
                "edges": result.n_edges,
                "status": result.status,
                "path": result.path if result.status != "unchanged" else None,
                "seconds": round(result.seconds, 2),
            }
        )
        bar.update(1)

    try:
        store.write_graphs(graphs, replace=replace, progress=bars, on_result=record)
    except KeyboardInterrupt:
        click.echo(_undo_created(store, created), err=True)
        raise
    except Exception as exc:
        raise CircuitAtlasError(f"{exc} — {_undo_created(store, created)}") from exc
    finally:
        bar.close()
    order = {graph_id: i for i, graph_id in enumerate(ids)}
    results.sort(key=lambda row: order[row["graph_id"]])  # a batch reports as graphs turn ready
    if out != "table":
        print_rows(results, out)
        return
    for row in results:
        click.echo(
            f"{row['graph_id']}: {row['nodes']:,} nodes, {row['edges']:,} edges — {row['status']}"
            + (f" ({row['path']}, {row['seconds']:.1f} s)" if row["path"] else "")
        )


def _undo_created(store: Any, created: list[str]) -> str:
    """Delete the graphs this ingest created before it failed; say what was undone."""
    undone, left = [], []
    for graph_id in created:
        try:
            store.delete_graph(graph_id)
            undone.append(graph_id)
        except Exception:  # keep going: report what is left
            left.append(graph_id)
    message = "ingest stopped"
    if undone:
        message += f"; removed the {len(undone)} graph(s) it had created"
    if left:
        message += f"; could not remove {left} (circuit-atlas rm them)"
    return message


@click.command()
@click.option("--model", help="Only graphs of this model.")
@click.option("--method", help="Only graphs made by this method.")
@click.option("--source-format", help="Only graphs imported from this format.")
@click.option("--contains", help="Only graph ids containing this text.")
@format_option
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
    store = state.store(dataframes=False)  # first: it decides how the driver is imported
    from circuit_atlas.store.circuit_store import GRAPH_LIST_COLUMNS

    rows = store.graph_rows(model, method, source_format, contains)
    print_rows(rows, out, columns=list(GRAPH_LIST_COLUMNS))


def readable(key: str, value: Any) -> Any:
    """A stored property as a person reads it: epoch seconds as a local date-time."""
    if key in TIMESTAMP_PROPERTIES and isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value).isoformat(sep=" ", timespec="seconds")
    return value


@click.command()
@click.argument("graph_id")
@format_option
@pass_ctx
def show(state: StoreContext, graph_id: str, out: str) -> None:
    """Show one graph's metadata and its nodes counted by kind."""
    store = state.store(dataframes=False)
    info = store.graph_info(graph_id)
    hidden = {"metadata_json", "writer_token", "writer_space", "heartbeat_at"}
    kinds = store.query(
        "MATCH (n:Node {graph_id: $gid}) RETURN n.kind AS kind, count(*) AS nodes ORDER BY kind",
        {"gid": graph_id},
    )
    properties = {k: info[k] for k in sorted(info) if k not in hidden}
    if out == "json":
        from circuit_atlas.cli.json_output import strict_json

        click.echo(strict_json({"graph": properties, "nodes_by_kind": kinds}, indent=1))
        return
    rows = [{"property": k, "value": readable(k, v)} for k, v in properties.items()]
    rows += [{"property": f"nodes: {r['kind']}", "value": r["nodes"]} for r in kinds]
    if out == "csv":
        print_rows(rows, out)
        return
    width = max(len(r["property"]) for r in rows)
    for row in rows:
        click.echo(f"{row['property']:{width}}  {row['value']}")


@click.command()
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
    store = state.store(dataframes=False)
    for graph_id in graph_ids:
        store.delete_graph(graph_id, force=force, progress=progress_enabled())
        click.echo(f"{graph_id}: deleted")


@click.command()
@click.argument("query")
@click.option("--param", "-p", "params", multiple=True, help="name=value (JSON values parsed).")
@click.option("--write", is_flag=True, help="Allow write clauses and commit.")
@format_option
@timeout_option
@pass_ctx
def cypher(
    state: StoreContext, query: str, params: tuple[str, ...], write: bool, out: str, timeout: float
) -> None:
    """Run a Cypher QUERY (read-only unless --write); values go in as parameters.

    After --write, what the server reports it changed is printed on stderr (nodes and
    relationships created or deleted, properties set), so the rows on stdout stay clean.
    """
    values = dict(parse_param(p) for p in params)
    rows, counters = state.store(dataframes=False).query_with_counters(
        query, values, write=write, timeout_s=timeout
    )
    print_rows(rows, out)
    if write:
        changed = {k: v for k, v in counters.items() if v}
        summary = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in changed.items())
        click.echo(f"committed: {summary or 'the server reports no changes'}", err=True)


@click.command()
@pass_ctx
def upgrade(state: StoreContext) -> None:
    """Add to stored graphs what a newer Circuit Atlas derives at ingest: the path bounds that
    let strongest_paths and roi_paths prune (graphs without them get exact but slow, unpruned
    walks), and the per-graph summaries that top_edges_per_layer_pair, error_share_per_layer
    and feature_jaccard read (they refuse graphs without them). Computed from each graph's
    exact artifact; running it again changes nothing."""
    from tqdm.auto import tqdm

    store = state.store()
    missing = store.graphs_without_path_bounds()
    unsummarised = store.graphs_without_summaries()
    if not missing and not unsummarised:
        click.echo("every graph is up to date")
        return
    for graph_id in tqdm(missing, desc="path bounds", unit="graph", disable=not progress_enabled()):
        nodes = store.add_path_bounds(graph_id)
        click.echo(f"{graph_id}: path bounds added to {nodes} nodes")
    for graph_id in tqdm(
        unsummarised, desc="summaries", unit="graph", disable=not progress_enabled()
    ):
        store.add_summaries(graph_id)
        click.echo(f"{graph_id}: summaries added")
