"""``circuit-atlas demo``: the main job on the zero-setup default.

Ingests the real example graphs bundled with the package (two circuit-tracer CLT graphs, the
1.0.0 ``dollar`` graph with its colliding node ids, and an EAP-IG GPT-2 IOI graph), then shows
each capability once on them: Cypher, graph scores written back, a named path query, ROIs with
an HTML report, and a cross-prompt comparison; then a sparse feature circuit of the shipped
induction model with its node-vs-edge ablation curve — and says where everything lives. Before that,
``demo_attribution`` runs EAP-IG on a real pretrained model and its graph is stored first.
"""

from __future__ import annotations

from importlib import resources

import click

from circuit_atlas.analysis.compare.stored import compare_stored
from circuit_atlas.analysis.roi.report import roi_html
from circuit_atlas.analysis.roi.stored import roi_stored
from circuit_atlas.analysis.scores.stored import score_stored_graph
from circuit_atlas.cli.tables import table_text
from circuit_atlas.demo.features import FeatureDemo, show_feature_demo
from circuit_atlas.demo.sae_circuit import run_sae_circuit_demo
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.attribution.job import JobOutput
from circuit_atlas.progress import progress_enabled
from circuit_atlas.queries.library import run_query
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


CIRCUIT_EDGES = """
MATCH (a:Node {graph_id: $gid})-[e:EDGE {in_graph: true}]->(b:Node)
RETURN a.display_id AS source, b.display_id AS target, coalesce(e.channel, "") AS channel,
       e.weight AS score
ORDER BY abs(e.weight) DESC LIMIT 8
"""


def _store_attribution(store: CircuitStore, attribution: JobOutput) -> None:
    graph = attribution.graph
    result = store.write_graph(graph, replace=True, progress=progress_enabled())
    _section(f"the attribution graph in the store ({result.status})")
    click.echo(
        f"{result.graph_id}: {result.n_nodes:,} nodes, {result.n_edges:,} edges "
        f"(every edge scored; in_graph marks the {int(attribution.circuit.sum())}-edge "
        "circuit)"
    )
    click.echo("strongest circuit edges (Cypher):")
    click.echo(table_text(store.query(CIRCUIT_EDGES, {"gid": graph.graph_id})))
    for name, path in attribution.files.items():
        click.echo(f"{name}: {path}")


def _section(title: str) -> None:
    click.echo(f"\n== {title}")


def run_demo(
    store: CircuitStore,
    attribution: JobOutput | None = None,
    features: FeatureDemo | None = None,
) -> None:
    if attribution is not None:
        _store_attribution(store, attribution)
    if features is not None:
        show_feature_demo(store, features)
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
    columns = ["graph_id", "model", "source_format", "nodes", "edges"]
    click.echo(table_text(store.graph_rows(), columns))
    _section("strongest edges of gemma-dollar (Cypher)")
    click.echo(table_text(store.query(STRONGEST_EDGES, {"gid": "gemma-dollar"})))
    bee, nobel = ids[0], ids[1]
    _section(f"features shared by {bee} and {nobel} (cross-graph :Feature identity)")
    click.echo(table_text(store.query(SHARED_FEATURES, {"a": bee, "b": nobel})))
    _section("graph scores (replacement / completeness), written back to the store")
    for graph_id in (bee, nobel, "gemma-dollar"):
        report = score_stored_graph(store, graph_id, pin_top=[22]).report
        full, pruned, top = report.rows
        click.echo(
            f"{graph_id:32} full {full.replacement:.3f}/{full.completeness:.3f}   "
            f"pruned {pruned.replacement:.3f}/{pruned.completeness:.3f}   "
            f"top-22 subgraph {top.replacement:.3f}/{top.completeness:.3f}"
        )
    _section("strongest paths into gemma-dollar's top logit (named query strongest_paths)")
    paths = run_query(
        store,
        "strongest_paths",
        {"graph_id": "gemma-dollar", "target_key": "logit:27:6:64091:", "k": 3},
    )
    for nodes, product in zip(paths["nodes"], paths["product"]):
        click.echo(f"{product:10.1f}  " + " -> ".join(nodes))
    _section("regions of interest in gemma-dollar (louvain), with an HTML report")
    rois = roi_stored(store, ["gemma-dollar"], "louvain")
    reports = store.artifact_dir.parent / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    page = reports / "gemma-dollar-rois.html"
    page.write_text(roi_html(rois.result, rois.quotient, written=rois.written))
    quality = rois.result.quality
    click.echo(
        f"run {rois.result.run_id}: {rois.result.n_rois} ROIs, modularity "
        f"{quality['modularity']:.3f}; quotient graph {rois.quotient.graph_id}; report {page}"
    )
    _section(f"comparing {bee} and {nobel} (shared transcoder features)")
    pair = compare_stored(store, [bee, nobel]).pairs.iloc[0]
    click.echo(
        f"Jaccard {pair.jaccard:.3f}, weighted overlap {pair.weighted_overlap:.3f}, "
        f"influence overlap {pair.influence_overlap:.3f} ({pair.shared} shared features)"
    )
    _section("a sparse feature circuit: SAEs on the shipped induction model (docs/sae_circuits.md)")
    run_sae_circuit_demo(store, progress=progress_enabled())
    _section("where things are")
    click.echo(f"database: {store.uri} database {store.database!r}")
    click.echo(f"adjacency artifacts: {store.artifact_dir}")
    if attribution is not None:
        click.echo(
            f"attribution graph: {attribution.graph.graph_id} "
            f"(faithfulness {attribution.faithfulness:.3f} at "
            f"{int(attribution.circuit.sum())} edges)"
        )
        for name, path in attribution.files.items():
            click.echo(f"{name}: {path}")
    click.echo(
        "try:  circuit-atlas graphs   |   circuit-atlas score gemma-dollar   |   "
        "circuit-atlas query --list   |   circuit-atlas roi --help   |   "
        "circuit-atlas cypher 'MATCH (g:Graph) RETURN g.graph_id AS id'"
    )
