"""The demo's sparse feature circuit: the shipped induction model with the SAEs the project
trained for it (``ingest/sae_circuits/training.py``), on its induction task, stored, with its
faithfulness and completeness under node and under edge ablation."""

from __future__ import annotations

import click
import pandas as pd

from circuit_atlas.cli.tables import table_text
from circuit_atlas.store import CircuitStore

GRAPH_ID = "induction-sae-circuit"


def run_sae_circuit_demo(store: CircuitStore, progress: bool = False) -> None:
    from circuit_atlas.ingest.attribution.model_adapter import load_model
    from circuit_atlas.ingest.attribution.toy_induction import induction_task, weights_path
    from circuit_atlas.ingest.sae_circuits.circuit import CircuitSettings, feature_circuit
    from circuit_atlas.ingest.sae_circuits.sites import build_sites, load_saes
    from circuit_atlas.ingest.sae_circuits.training import shipped_saes

    model = load_model(str(weights_path()))
    sites = build_sites(model, load_saes(shipped_saes()))
    task = induction_task(n=12)
    settings = CircuitSettings(ig_steps=4, aggregation="mean", node_threshold=0.1,
                               edge_threshold=0.02, batch_size=12, progress=progress)  # fmt: skip
    graph = feature_circuit(model, sites, task, settings, GRAPH_ID, "circuit_atlas/data/saes")
    result = store.write_graph(graph, replace=True)
    nodes = graph.nodes[graph.nodes["kind"] != "logits"]
    click.echo(
        f"{result.graph_id}: {len(nodes)} nodes ({int(nodes['kind'].str.endswith('_error').sum())}"
        f" error terms), {graph.n_edges} edges — {result.status}; induction task, mean "
        "effect on the logit difference"
    )
    top = nodes.reindex(nodes["node_effect"].abs().sort_values(ascending=False).index).head(6)
    click.echo(table_text(top[["label", "node_effect"]].round(3).to_dict(orient="records")))
    curve = pd.DataFrame(graph.metadata.extra.get("ablation_curve", []))
    if not curve.empty:
        click.echo("\nfaithfulness / completeness of the top-k nodes, node vs edge ablation:")
        columns = ["n_nodes", "n_edges", "faithfulness_node", "faithfulness_edge",
                   "completeness_node", "completeness_edge"]  # fmt: skip
        click.echo(table_text(curve[columns].round(3).to_dict(orient="records")))
