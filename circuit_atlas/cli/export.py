"""``circuit-atlas export``: write a stored graph in a format other tools read."""

from __future__ import annotations

from pathlib import Path

import click

from circuit_atlas.cli.options import StoreContext, pass_ctx

FORMATS = ("circuit-tracer-pt",)


@click.command()
@click.argument("graph_id")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    required=True,
    help="circuit-tracer-pt: circuit-tracer's Graph.to_pt (its Graph.from_pt reads it).",
)
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True)
@pass_ctx
def export(state: StoreContext, graph_id: str, file_format: str, out_path: Path) -> None:
    """Write GRAPH_ID's exact, unpruned graph (from its artifact) to --out."""
    from circuit_atlas.exporters.circuit_tracer_pt import write_circuit_tracer_pt

    graph = state.store().read_artifact(graph_id)
    write_circuit_tracer_pt(graph, out_path)
    click.echo(f"wrote {out_path} ({file_format}: {graph.n_nodes} nodes, {graph.n_edges} edges)")
