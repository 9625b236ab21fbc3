"""``circuit-atlas view``: a stored graph as one interactive page (circuit_atlas/viewer)."""

from __future__ import annotations

from pathlib import Path

import click

from circuit_atlas.cli.options import StoreContext, pass_ctx


@click.command()
@click.argument("graph_id")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The HTML file to write (self-contained: opens offline, from disk).",
)
@click.option(
    "--subgraph",
    "subgraph_name",
    metavar="NAME",
    help="Open with this stored subgraph pinned and its supernodes coloured "
    "(see `circuit-atlas subgraphs GRAPH_ID`).",
)
@click.option(
    "--roi",
    "roi_run",
    metavar="RUN_ID",
    help="Colour nodes by the ROIs of this run (`circuit-atlas roi` prints run ids).",
)
@click.option(
    "--pinned", multiple=True, metavar="NODE_KEY", help="Also pin this node (its key). Repeat."
)
@click.option(
    "--max-edges",
    type=click.IntRange(min=0),
    default=20_000,
    show_default=True,
    help="Keep the strongest edges by |weight| (the page says when some were dropped).",
)
@pass_ctx
def view(
    state: StoreContext,
    graph_id: str,
    out_path: Path,
    subgraph_name: str | None,
    roi_run: str | None,
    pinned: tuple[str, ...],
    max_edges: int,
) -> None:
    """Write GRAPH_ID as an interactive page: nodes by token position (x) and layer (y), edges
    by weight and sign, hover cards, click to pin, "copy as score --pinned", threshold sliders.
    """
    if subgraph_name is not None and roi_run is not None:
        raise click.UsageError("give --subgraph or --roi, not both: one colouring per page")
    from circuit_atlas.exporters import views
    from circuit_atlas.viewer.page import render_view_page

    store = state.store()
    graph = store.read_artifact(graph_id)
    pins = list(pinned)
    groups: dict[str, list[str]] = {}
    kind = "supernode"
    if subgraph_name is not None:
        saved = views.subgraph_view(store, graph_id, subgraph_name)
        pins = list(dict.fromkeys([*saved.pinned, *pins]))
        groups = _unique(saved.supernodes)
    elif roi_run is not None:
        groups = _unique(views.roi_view(store, graph, roi_run).supernodes)
        kind = "roi"
    page = render_view_page(graph, pinned=pins, groups=groups, group_kind=kind,
                            max_edges=max_edges)  # fmt: skip
    out_path.write_text(page, encoding="utf-8")
    click.echo(
        f"wrote {out_path} ({graph.n_nodes} nodes, {min(graph.n_edges, max_edges)} edges, "
        f"{len(pins)} pinned, {len(groups)} {kind}s); open it in a browser"
    )


def _unique(groups: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
    """Groups by label, a repeated label numbered (``A``, ``A (2)``) so none is lost."""
    out: dict[str, list[str]] = {}
    for label, members in groups:
        name, n = label, 1
        while name in out:
            n += 1
            name = f"{label} ({n})"
        out[name] = members
    return out
