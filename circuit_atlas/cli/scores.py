"""``circuit-atlas score`` and ``circuit-atlas prune``: graph scores and pruned graphs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from circuit_atlas.analysis.scores.thresholds import DEFAULT_EDGE_THRESHOLD, DEFAULT_NODE_THRESHOLD
from circuit_atlas.cli.options import StoreContext, format_option, pass_ctx, print_rows, print_table

FRACTION = click.FloatRange(0.0, 1.0)


def threshold_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--edge-threshold",
        type=FRACTION,
        default=DEFAULT_EDGE_THRESHOLD,
        show_default=True,
        help="Keep edges up to this cumulative share of edge influence.",
    )(command)
    return click.option(
        "--node-threshold",
        type=FRACTION,
        default=DEFAULT_NODE_THRESHOLD,
        show_default=True,
        help="Keep nodes up to this cumulative share of influence.",
    )(command)


@click.command()
@click.argument("graph_id")
@click.option(
    "--pinned",
    multiple=True,
    metavar="NODE",
    help="A node of the subgraph: node key, the source tool's node id, or display id. Repeat.",
)
@click.option(
    "--name",
    help="Name of the --pinned subgraph (default 'pinned'). One subgraph per name and graph: "
    "scoring a name again replaces it.",
)
@click.option(
    "--supernode",
    "supernodes",
    multiple=True,
    metavar="LABEL=NODE,NODE",
    help="A labelled group of --pinned nodes (Neuronpedia's supernodes), stored as :Supernode "
    "and written back by `export --format neuronpedia --subgraph NAME`. Repeat.",
)
@click.option(
    "--saved",
    is_flag=True,
    help="Also score the subgraph saved with the graph (a Neuronpedia file's pinned nodes), "
    "stored as :Subgraph 'saved' with its supernodes.",
)
@click.option(
    "--pin-top",
    type=click.IntRange(min=1),
    multiple=True,
    metavar="N",
    help="Also score the subgraph of the N most influential features. Repeatable.",
)
@threshold_options
@click.option("--no-write", is_flag=True, help="Print only; store nothing.")
@format_option
@pass_ctx
def score(
    state: StoreContext,
    graph_id: str,
    pinned: tuple[str, ...],
    name: str | None,
    supernodes: tuple[str, ...],
    saved: bool,
    pin_top: tuple[int, ...],
    node_threshold: float,
    edge_threshold: float,
    no_write: bool,
    out: str,
) -> None:
    """Replacement and completeness of GRAPH_ID: full, pruned and pinned subgraphs.

    Unpinned features are folded into the error node at their (layer, position); the scores are
    written back to the store (:Graph properties, one :Subgraph per pinned set).
    """
    from circuit_atlas.analysis.scores.stored import parse_supernode, score_stored_graph
    from circuit_atlas.cli.json_output import strict_json

    result = score_stored_graph(
        state.store(),
        graph_id,
        pinned=list(pinned),
        pin_top=list(pin_top),
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
        write=not no_write,
        name=name,
        saved=saved,
        supernodes=[parse_supernode(spec) for spec in supernodes],
    )
    report = result.report
    if out == "json":
        extra = {"source": result.source, "fallback_reason": result.fallback_reason}
        click.echo(strict_json({**report.to_dict(), **extra}, indent=1))
        return
    table = report.table()
    if out == "table":
        table["replacement"] = table["replacement"].map("{:.4f}".format)
        table["completeness"] = table["completeness"].map("{:.4f}".format)
        table["pinned"] = table["pinned"].map(lambda v: "" if v != v else str(int(v)))
        click.echo(f"graph {report.graph_id}  (from the {result.source})")
        if result.fallback_reason:
            click.echo(f"note: {result.fallback_reason}; scored the database copy")
    print_table(table, out)
    if out == "table":
        for note in report.notes:
            click.echo(f"note: {note}")
        if result.written:
            n_sub = sum(1 for r in report.rows if r.scope == "subgraph")
            click.echo(f"written: :Graph score properties and {n_sub} :Subgraph node(s)")


@click.command()
@click.argument("graph_id")
@threshold_options
@click.option("--graph-id", "new_graph_id", help="Id of the pruned graph (default: derived).")
@click.option("--replace", is_flag=True, help="Overwrite a stored graph of that id.")
@format_option
@pass_ctx
def prune(
    state: StoreContext,
    graph_id: str,
    node_threshold: float,
    edge_threshold: float,
    new_graph_id: str | None,
    replace: bool,
    out: str,
) -> None:
    """Store GRAPH_ID pruned by influence as a new graph, linked [:DERIVED_FROM] to it.

    The stored graph keeps the nodes whose own influence passes --node-threshold (error nodes
    included); `score` scores the pruned circuit with every error node kept, since pruned
    features are folded into them, so its node count is larger.
    """
    from circuit_atlas.analysis.scores.stored import prune_stored_graph

    store = state.store()
    parent = store.graph_info(graph_id)
    result, child = prune_stored_graph(
        store, graph_id, node_threshold, edge_threshold, new_graph_id, replace
    )
    row = {
        "graph_id": child.graph_id,
        "parent": graph_id,
        "nodes": child.n_nodes,
        "parent_nodes": parent["n_nodes"],
        "edges": child.n_edges,
        "parent_edges": parent["n_edges"],
        "status": result.status,
        **{f"kept_{kind}": n for kind, n in child.nodes["kind"].value_counts().items()},
    }
    if out != "table":
        print_rows([row], out)
        return
    click.echo(
        f"{graph_id} -> {child.graph_id}: kept {child.n_nodes}/{parent['n_nodes']} nodes, "
        f"{child.n_edges}/{parent['n_edges']} edges ({result.status})"
    )
    kinds = ", ".join(f"{n} {kind}" for kind, n in child.nodes["kind"].value_counts().items())
    click.echo(f"kept by kind: {kinds} (`score` counts every error node: see --help)")


@click.command()
@click.argument("graph_id")
@format_option
@pass_ctx
def subgraphs(state: StoreContext, graph_id: str, out: str) -> None:
    """The named subgraphs stored for GRAPH_ID: pinned nodes, supernodes and scores.

    Subgraphs come from `score --pinned … --name NAME [--supernode …]`, `score --pin-top N`
    and `score --saved` (a Neuronpedia file's own); `export --format neuronpedia --subgraph
    NAME` writes one back into the file's qParams.
    """
    rows = [
        {
            "name": row["name"],
            "pinned": len(row["members"]),
            "supernodes": "; ".join(
                f"{g['label']} ({len(g['members'])})" for g in row["supernodes"]
            ),
            "replacement": row["props"].get("replacement_score"),
            "completeness": row["props"].get("completeness_score"),
        }
        for row in state.store().subgraphs(graph_id)
    ]
    print_rows(rows, out)
