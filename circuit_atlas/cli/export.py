"""``circuit-atlas export``: write a stored graph in a format other tools read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from circuit_atlas.cli.options import StoreContext, pass_ctx
from circuit_atlas.cli.scores import FRACTION

if TYPE_CHECKING:
    from circuit_atlas.graph import CircuitGraph

FORMATS = (
    "circuit-tracer-pt",
    "neuronpedia",
    "eap-ig-json",
    "eap-ig-pt",
    "mib-importances",
    "mib-circuits",
)
COMPONENT_FORMATS = FORMATS[2:]


@click.command()
@click.argument("graph_id")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    required=True,
    help="circuit-tracer-pt: circuit-tracer's Graph.to_pt (its Graph.from_pt reads it), the "
    "exact unpruned graph. neuronpedia: the graph JSON Neuronpedia's viewer loads. "
    "eap-ig-json / eap-ig-pt: EAP-IG's Graph.to_json / to_pt (component graphs). "
    "mib-importances / mib-circuits: a MIB circuit-track folder (--out DIR, named "
    "<task>_<model>): every edge's score, or nine circuits at 0.1 … 50 % of edges.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path),
    required=True,
    help="The file to write (a folder for mib-*).",
)
@click.option(
    "--node-threshold",
    type=FRACTION,
    help="neuronpedia: prune to this cumulative share of node influence first (default 0.8 for "
    "a graph never pruned; a graph already pruned, e.g. imported from Neuronpedia, is written "
    "as it is).",
)
@click.option(
    "--edge-threshold",
    type=FRACTION,
    help="neuronpedia: with pruning, keep edges up to this cumulative share (default 0.98).",
)
@click.option(
    "--subgraph",
    "subgraph_name",
    metavar="NAME",
    help="neuronpedia: open the file with this stored subgraph pinned, its supernodes grouped "
    "(see `circuit-atlas subgraphs GRAPH_ID`).",
)
@click.option(
    "--roi",
    "roi_run",
    metavar="RUN_ID",
    help="neuronpedia: open the file with the ROIs of this run as supernodes (automatic "
    "supernodes; `circuit-atlas roi` prints run ids).",
)
@pass_ctx
def export(
    state: StoreContext,
    graph_id: str,
    file_format: str,
    out_path: Path,
    node_threshold: float | None,
    edge_threshold: float | None,
    subgraph_name: str | None,
    roi_run: str | None,
) -> None:
    """Write GRAPH_ID (from its exact artifact) to --out."""
    neuronpedia_only = (node_threshold, edge_threshold, subgraph_name, roi_run)
    if file_format != "neuronpedia" and any(v is not None for v in neuronpedia_only):
        raise click.UsageError(
            "--node-threshold/--edge-threshold/--subgraph/--roi apply to --format neuronpedia"
        )
    if subgraph_name is not None and roi_run is not None:
        raise click.UsageError("give --subgraph or --roi, not both: one view per file")
    graph = state.store().read_artifact(graph_id)
    if file_format in COMPONENT_FORMATS:
        _export_component_graph(graph, file_format, out_path)
        return
    if file_format == "circuit-tracer-pt":
        from circuit_atlas.exporters.circuit_tracer_pt import write_circuit_tracer_pt

        write_circuit_tracer_pt(graph, out_path)
        click.echo(
            f"wrote {out_path} ({file_format}: {graph.n_nodes} nodes, {graph.n_edges} edges)"
        )
        return
    from circuit_atlas.exporters import views
    from circuit_atlas.exporters.neuronpedia import pruned_for_neuronpedia, write_neuronpedia_json

    store = state.store()
    view = (
        views.subgraph_view(store, graph_id, subgraph_name)
        if subgraph_name is not None
        else views.roi_view(store, graph, roi_run)
        if roi_run is not None
        else None
    )
    written = pruned_for_neuronpedia(graph, node_threshold, edge_threshold)
    write_neuronpedia_json(written, out_path, view)
    if view is not None and (missing := view.missing(written)):
        click.echo(
            f"note: {len(missing)} node(s) of the view were pruned away and are not pinned: "
            + ", ".join(missing[:5])
            + (" …" if len(missing) > 5 else ""),
            err=True,
        )
    pruning = (
        f"pruned {written.metadata.node_threshold:g}/{written.metadata.edge_threshold:g} "
        f"from {graph.n_nodes} nodes, {graph.n_edges} edges"
        if written is not graph
        else "as stored"
    )
    click.echo(
        f"wrote {out_path} (neuronpedia: {written.n_nodes} nodes, {written.n_edges} links, "
        f"{pruning})"
    )


def _export_component_graph(graph: CircuitGraph, file_format: str, out_path: Path) -> None:
    from circuit_atlas.exporters import eap_ig

    if file_format == "eap-ig-json":
        written = [eap_ig.write_eap_ig_json(graph, out_path)]
    elif file_format == "eap-ig-pt":
        written = [eap_ig.write_eap_ig_pt(graph, out_path)]
    else:
        written = eap_ig.write_mib_submission(
            graph, out_path, circuits=file_format == "mib-circuits"
        )
    where = written[0] if len(written) == 1 else f"{len(written)} files in {out_path}"
    click.echo(f"wrote {where} ({file_format}: {graph.n_nodes} nodes, {graph.n_edges} edges)")
