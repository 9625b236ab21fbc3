"""Latency of every named query: on the 57-graph analogy corpus and on large synthetic graphs.

    python benchmarks/queries.py [--repeats 5] [--corpus DIR_OF_ANALOGY_GRAPHS]

Runs on the zero-setup local server (started here, in a temporary folder). Workloads:

* the 57 analogy graphs (skipped when the folder is absent), each query anchored on one graph;
* a synthetic 10,000-node graph with 100,000 edges (attribution-graph density);
* a synthetic 20,000-node graph with 1,000,000 edges.

For each query it prints the median of ``--repeats`` runs after one warm-up, and, as the
baseline measured in the same run, the median of a trivial anchored query
(``MATCH (g:Graph {graph_id: $g}) RETURN g.graph_id``) — the fixed cost of one Bolt round trip.
Target: strongest_paths on the 10k-node graph < 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from circuit_atlas.analysis.score_store import score_stored_graph
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.neuronpedia import parse_neuronpedia
from circuit_atlas.local_server import LocalServer
from circuit_atlas.queries.library import library, run_query
from circuit_atlas.store import CircuitStore, ConnectionSettings
from circuit_atlas.synthetic import synthetic_neuronpedia

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE.parent.parent / "shared" / "data" / "graphs" / "neuronpedia" / "analogies"
BASELINE = "MATCH (g:Graph {graph_id: $g}) RETURN g.graph_id AS id"


def median_seconds(action: Any, repeats: int) -> float:
    action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def anchors(store: CircuitStore, graph_id: str) -> dict[str, dict[str, Any]]:
    """Arguments for every named query, anchored on real nodes of ``graph_id``."""
    logit = store.query(
        "MATCH (n:Node {graph_id: $g, kind: 'logit'}) RETURN n.node_key AS k "
        "ORDER BY n.token_prob DESC LIMIT 1",
        {"g": graph_id},
    )[0]["k"]
    top = store.query(
        "MATCH (n:Node {graph_id: $g, kind: 'feature'}) RETURN n.node_key AS k, n.layer AS layer, "
        "n.feature AS feature ORDER BY coalesce(n.score_influence, 0.0) DESC, n.activation DESC "
        "LIMIT 2",
        {"g": graph_id},
    )
    feature = top[0]
    motif = store.query(
        "MATCH (a:Node {graph_id: $g, kind: 'feature'})-[e:EDGE]->(b:Node {kind: 'feature'}) "
        "RETURN a.layer AS al, a.feature AS af, b.layer AS bl, b.feature AS bf "
        "ORDER BY abs(e.weight) DESC LIMIT 1",
        {"g": graph_id},
    )[0]
    return {
        "strongest_paths": {"graph_id": graph_id, "target_key": logit},
        "upstream": {"graph_id": graph_id, "node_key": feature["k"]},
        "downstream": {"graph_id": graph_id, "node_key": feature["k"]},
        "top_edges_per_layer_pair": {"graph_id": graph_id},
        "nodes_by_influence": {"graph_id": graph_id},
        "error_share_per_layer": {"graph_id": graph_id},
        "shared_features": {"graph_ids": [], "min_graphs": 2},
        "graphs_with_feature": {"layer": feature["layer"], "feature": feature["feature"]},
        "graphs_with_motif": {
            "a_layer": motif["al"],
            "a_feature": motif["af"],
            "b_layer": motif["bl"],
            "b_feature": motif["bf"],
        },
        "subgraph_scores": {},
    }


def measure(store: CircuitStore, graph_id: str, label: str, repeats: int) -> dict[str, float]:
    baseline = median_seconds(lambda: store.query(BASELINE, {"g": graph_id}), repeats)
    print(f"\n{label}  (baseline round trip: {baseline * 1000:.1f} ms)")
    print(f"{'query':26} {'median':>10} {'rows':>6} {'x baseline':>11}")
    results = {}
    for name, values in anchors(store, graph_id).items():
        rows = len(run_query(store, name, values, timeout_s=600))
        seconds = median_seconds(lambda n=name, v=values: run_query(store, n, v, 600), repeats)
        results[name] = seconds
        print(f"{name:26} {seconds * 1000:8.1f} ms {rows:6d} {seconds / baseline:10.1f}x")
    return results


def synthetic(store: CircuitStore, nodes: int, edges: int, slug: str) -> str:
    document = synthetic_neuronpedia(nodes, edges, n_layers=24, n_pos=12, seed=1, slug=slug)
    graph = parse_neuronpedia(document, Path(f"{slug}.json"))
    store.write_graph(graph)  # not scored: synthetic features may have no inputs
    return graph.graph_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--skip-corpus", action="store_true")
    args = parser.parse_args()
    assert len(library()) >= 10
    with tempfile.TemporaryDirectory() as folder, LocalServer(Path(folder)) as server:
        endpoint = server.endpoint
        settings = ConnectionSettings(
            uri=endpoint.uri,
            user=endpoint.user,
            password=endpoint.password,
            database=endpoint.database,
            data_dir=Path(folder),
            artifact_dir=Path(folder) / "artifacts",
        )
        store = CircuitStore.open(settings)
        store.local_server = server
        try:
            files = sorted(args.corpus.glob("*.json")) if args.corpus.exists() else []
            files = files if not args.skip_corpus else []
            if files:
                ids = []
                for path in files:
                    graph = load_graph(path)
                    store.write_graph(graph)
                    score_stored_graph(store, graph.graph_id, pin_top=[22])
                    ids.append(graph.graph_id)
                measure(
                    store, ids[0], f"57-graph analogy corpus (anchored on {ids[0]})", args.repeats
                )
            else:
                print(f"(corpus skipped: {args.corpus} absent or --skip-corpus)")
            medium = synthetic(store, 10_000, 100_000, "synthetic-10k")
            results = measure(store, medium, "synthetic 10k nodes / 100k edges", args.repeats)
            large = synthetic(store, 20_000, 1_000_000, "synthetic-1m")
            measure(store, large, "synthetic 20k nodes / 1M edges", args.repeats)
            verdict = "met" if results["strongest_paths"] < 1 else "MISSED"
            print(
                f"\nstrongest_paths on the 10k-node graph: "
                f"{results['strongest_paths'] * 1000:.0f} ms (target < 1 s: {verdict})"
            )
        finally:
            store.close()


if __name__ == "__main__":
    main()
