"""``circuit-atlas demo``: the main job on the zero-setup default.

Ingests the real example graphs bundled with the package (two circuit-tracer CLT graphs, the
1.0.0 ``dollar`` graph with its colliding node ids, and an EAP-IG GPT-2 IOI graph), then asks the
store a few questions in Cypher and says where everything lives. Later issues extend it with an
attribution job on a real model.
"""

from __future__ import annotations

from importlib import resources

import click
import pandas as pd

from circuit_atlas.ingest import load_graph
from circuit_atlas.progress import progress_enabled
from circuit_atlas.store import CircuitStore

EXAMPLES = (
    "bee-insect-clt.json.gz",
    "nobel-clt.json.gz",
    "dollar.json.gz",
    "gpt2-ioi-eap-ig.json.gz",
)

STRONGEST_EDGES = """
MATCH (a:Node {graph_id: $gid})-[e:EDGE]->(b:Node)
RETURN a.display_id AS source, b.display_id AS target, e.weight AS weight
ORDER BY abs(e.weight) DESC LIMIT 5
"""
SHARED_FEATURES = """
MATCH (g1:Node {graph_id: $a})-[:INSTANCE_OF]->(f:Feature)<-[:INSTANCE_OF]-(g2:Node {graph_id: $b})
RETURN f.layer AS layer, f.feature AS feature,
       count(DISTINCT g1) AS nodes_in_a, count(DISTINCT g2) AS nodes_in_b,
       max(g1.activation) AS max_activation_a, max(g2.activation) AS max_activation_b
ORDER BY layer, feature LIMIT 10
"""


def _section(title: str) -> None:
    click.echo(f"\n== {title}")


def run_demo(store: CircuitStore) -> None:
    files = [resources.files("circuit_atlas") / "data" / name for name in EXAMPLES]
    _section("ingest bundled example graphs")
    ids = []
    for entry in files:
        with resources.as_file(entry) as path:
            graph = load_graph(path)
        result = store.write_graph(graph, progress=progress_enabled())
        ids.append(result.graph_id)
        click.echo(
            f"{result.graph_id}: {result.n_nodes:,} nodes, {result.n_edges:,} edges — "
            f"{result.status}"
        )
    _section("graphs in the store")
    frame = store.list_graphs()
    click.echo(
        frame[["graph_id", "model", "source_format", "nodes", "edges"]].to_string(index=False)
    )
    _section("strongest edges of gemma-dollar (Cypher)")
    click.echo(
        pd.DataFrame(store.query(STRONGEST_EDGES, {"gid": "gemma-dollar"})).to_string(index=False)
    )
    bee, nobel = ids[0], ids[1]
    _section(f"features shared by {bee} and {nobel} (cross-graph :Feature identity)")
    shared = pd.DataFrame(store.query(SHARED_FEATURES, {"a": bee, "b": nobel}))
    click.echo(shared.to_string(index=False) if not shared.empty else "(none)")
    _section("where things are")
    click.echo(f"database: {store.uri} database {store.database!r}")
    click.echo(f"adjacency artifacts: {store.artifact_dir}")
    click.echo(
        "try:  circuit-atlas graphs   |   circuit-atlas show gemma-dollar   |   "
        "circuit-atlas cypher 'MATCH (g:Graph) RETURN g.graph_id AS id'"
    )
