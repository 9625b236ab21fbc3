"""An attribution result as EAP-IG JSON and as a :class:`CircuitGraph` for the store.

Both carry every edge with its score and ``in_graph`` (circuit membership). The graph is built by
parsing our own EAP-IG document with the EAP-IG importer, so a file written here and ingested
later gives the very same graph: one mapping, not two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest.attribution.circuit import circuit_nodes
from circuit_atlas.ingest.attribution.methods import AttributionResult
from circuit_atlas.ingest.eap_ig import parse_eap_ig


def eap_ig_document(result: AttributionResult, circuit: np.ndarray, d_model: int) -> dict:
    graph = result.graph
    members = circuit_nodes(graph, circuit)
    forward, backward, scores = result.edge_scores()
    return {
        "cfg": {
            "n_layers": graph.n_layers,
            "n_heads": graph.n_heads,
            "parallel_attn_mlp": graph.parallel_attn_mlp,
            "d_model": d_model,
        },
        "nodes": {
            name: {"in_graph": name in members, **_node_scores(result, i)}
            for i, name in enumerate(graph.node_names)
        },
        "edges": {
            graph.edge_name(f, k): {"score": float(s), "in_graph": bool(circuit[f, k])}
            for f, k, s in zip(forward, backward, scores)
        },
    }


def _node_scores(result: AttributionResult, index: int) -> dict[str, Any]:
    """EAP-IG's node fields for neuron-level results: ``score`` (the node's total) and
    ``neurons_scores`` (per output dimension); nothing for ``logits`` or without them."""
    neurons = result.neuron_scores
    if neurons is None or index >= len(neurons):
        return {}
    return {"score": float(neurons[index].sum()), "neurons_scores": neurons[index].tolist()}


def write_eap_ig_json(document: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def to_circuit_graph(
    document: dict,
    result: AttributionResult,
    *,
    graph_id: str,
    model_name: str,
    evaluation: dict[str, Any] | None = None,
) -> CircuitGraph:
    graph = parse_eap_ig(document, Path(f"{graph_id}.json"), graph_id=graph_id)
    metadata = graph.metadata.model_copy(
        update={
            "model": model_name,
            "method": result.method,
            "source_tool": "circuit-atlas attribute",
            "source_format": "eap-ig",
            "extra": {
                **graph.metadata.extra,
                "source_file": None,
                "task": result.settings.get("task"),
                "metric": result.metric,
                "intervention": result.intervention,
                "aggregation": result.aggregation,
                "ig_steps": result.settings.get("ig_steps"),
                "ig_rule": result.settings.get("ig_rule"),
                "n_examples": result.n_examples,
                "dropped_pairs": result.settings.get("dropped_pairs"),
                "clean_metric": result.clean_metric,
                "corrupted_metric": result.counterfactual_metric,
                **(evaluation or {}),
            },
        }
    )
    return CircuitGraph(graph.nodes, graph.edges, metadata)
