"""Latency of every named query: on the 57-graph analogy corpus and on large synthetic graphs.

    python benchmarks/queries.py [--repeats 5] [--timeout 60] [--corpus DIR] [--skip-corpus]
                                 [--skip-large] [--neo4j DIR/connection.env]

Runs on the zero-setup local server (started here, in a temporary folder) and, with ``--neo4j``,
on that Neo4j too, in the same run (its database is emptied first: use a throwaway server, such
as ``.ci/neo4j/ctl start DIR``). Workloads:

* the 57 analogy graphs (skipped when the folder is absent), each scored with a pinned top-22
  subgraph; queries anchored on the first graph, cross-graph queries over all 57;
* a layered 10,000-node graph with 200,000 edges, shaped like a real attribution graph
  (``circuit_atlas.testing.synthetic.layered_neuronpedia``: tokens, error nodes, features over
  26 layers and 12 positions, 10 logits that hear from most of the graph);
* a layered 20,000-node graph with 1,000,000 edges (``--skip-large`` skips it).

On each, an ROI run (louvain, one graph) is computed and stored first, so that ``roi_members``
and ``roi_paths`` have a run to read. Every named query is timed: the median of ``--repeats``
runs after one warm-up. The baseline, measured in the same run, is the median of a trivial
anchored query (``MATCH (g:Graph {graph_id: $g}) RETURN g.graph_id``), the fixed cost of one
Bolt round trip. A query that runs past ``--timeout`` is stopped and reported as such; one
whose warm-up takes over 10 s is reported from that single run.

Target: strongest_paths on the 10k-node graph < 1 s. It is reported at its default
(``max_length`` 3) and at every length up to its maximum (6), with and without an edge threshold,
next to the number of token → logit paths each setting admits (counted exactly in Python):
what listing every path would have to enumerate, and the query, pruning by stored path bounds
(docs/queries.md), does not.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from circuit_atlas.analysis.roi.stored import roi_stored
from circuit_atlas.analysis.scores.stored import score_stored_graph
from circuit_atlas.errors import CircuitAtlasError, QueryTimeout
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.neuronpedia import parse_neuronpedia
from circuit_atlas.local_server import LocalServer
from circuit_atlas.queries.library import get_query, library, run_query
from circuit_atlas.store import CircuitStore, ConnectionSettings
from circuit_atlas.testing.synthetic import layered_neuronpedia

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE.parent.parent / "shared" / "data" / "graphs" / "neuronpedia" / "analogies"
BASELINE = "MATCH (g:Graph {graph_id: $g}) RETURN g.graph_id AS id"
TARGET_S = 1.0
THRESHOLDS = (0.5, 1.0, 2.0)  # min_abs_weight at the longest max_length
SLOW_S = 10.0


def seconds_of(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median_seconds(action: Callable[[], Any], repeats: int) -> float:
    """Median of ``repeats`` timed runs after one untimed warm-up."""
    action()
    return statistics.median(seconds_of(action) for _ in range(repeats))


def time_query(
    store: CircuitStore, name: str, values: dict[str, Any], repeats: int, timeout: float
) -> tuple[float | None, int, int]:
    """(median seconds, rows, runs timed); (None, 0, 0) when a run went past ``timeout``, and
    (None, 0, -1) when the database refused it (the error is printed; the benchmark goes on).

    The first run is the warm-up. A query whose warm-up takes more than ``SLOW_S`` is timed by
    that one run: repeating a minute-long enumeration would not change the verdict.
    """
    rows: list[int] = []

    def run() -> None:
        rows.append(len(run_query(store, name, values, timeout_s=timeout)))

    try:
        first = seconds_of(run)
        if first > SLOW_S:
            return first, rows[0], 1
        return statistics.median(seconds_of(run) for _ in range(repeats)), rows[0], repeats
    except QueryTimeout:
        return None, 0, 0
    except CircuitAtlasError as error:
        print(f"  {name}: {error}", flush=True)
        return None, 0, -1


def show(seconds: float | None, runs: int, timeout: float) -> str:
    if seconds is None:
        return "failed (above)" if runs < 0 else f"> {timeout:.0f} s (stopped)"
    return f"{seconds * 1000:9.1f} ms" + (" (1 run)" if runs == 1 else "")


def token_paths(graph: CircuitGraph, target_key: str, max_length: int, threshold: float) -> int:
    """Number of token → target paths of at most ``max_length`` edges with |w| >= threshold.

    Counted exactly by sparse products ``c ← M c`` (M[s, t] = 1 for a kept edge s → t) from the
    target's indicator, summed over the token rows: what listing every path must enumerate.
    """
    edges = graph.edges[graph.edges["weight"].abs() >= threshold]
    n = graph.n_nodes
    ones = np.ones(len(edges), dtype=np.float64)
    step = sp.csr_matrix((ones, (edges["source"], edges["target"])), shape=(n, n))
    keys = [k.encode() for k in graph.keys()]
    tokens = (graph.nodes["kind"] == "embedding").to_numpy()
    count = np.zeros(n)
    count[keys.index(target_key)] = 1.0
    total = 0.0
    for _ in range(max_length):
        count = step @ count
        total += count[tokens].sum()
    return int(total)


def anchor_logit(store: CircuitStore, graph_id: str) -> str:
    """The graph's most probable logit: the usual target of a path query."""
    return store.query(
        "MATCH (n:Node {graph_id: $g, kind: 'logit'}) RETURN n.node_key AS k "
        "ORDER BY n.token_prob DESC, k LIMIT 1",
        {"g": graph_id},
    )[0]["k"]


def anchors(store: CircuitStore, graph_id: str, run_id: str, graph_ids: list[str]) -> dict:
    """Arguments for every named query, anchored on real nodes of ``graph_id``."""
    logit = anchor_logit(store, graph_id)
    feature = store.query(
        "MATCH (n:Node {graph_id: $g, kind: 'feature'}) RETURN n.node_key AS k, n.layer AS layer, "
        "n.feature AS feature ORDER BY coalesce(n.score_influence, 0.0) DESC, n.activation DESC "
        "LIMIT 1",
        {"g": graph_id},
    )[0]
    motif = store.query(
        "MATCH (a:Node {graph_id: $g, kind: 'feature'})-[e:EDGE]->(b:Node {kind: 'feature'}) "
        "RETURN a.layer AS al, a.feature AS af, b.layer AS bl, b.feature AS bf "
        "ORDER BY abs(e.weight) DESC LIMIT 1",
        {"g": graph_id},
    )[0]
    arguments = {
        "strongest_paths": {"graph_id": graph_id, "target_key": logit},
        "upstream": {"graph_id": graph_id, "node_key": feature["k"]},
        "downstream": {"graph_id": graph_id, "node_key": feature["k"]},
        "top_edges_per_layer_pair": {"graph_id": graph_id},
        "nodes_by_influence": {"graph_id": graph_id},
        "error_share_per_layer": {"graph_id": graph_id},
        "shared_features": {"graph_ids": graph_ids, "min_graphs": 2},
        "feature_jaccard": {"graph_ids": graph_ids},
        "graphs_with_feature": {"layer": feature["layer"], "feature": feature["feature"]},
        "graphs_with_motif": {
            "a_layer": motif["al"],
            "a_feature": motif["af"],
            "b_layer": motif["bl"],
            "b_feature": motif["bf"],
        },
        "subgraph_scores": {},
        "roi_members": {"run_id": run_id},
        "roi_paths": {"run_id": run_id, "target_key": logit},
        "roi_edges": {"run_id": run_id},
        "roi_influence": {"run_id": run_id},
        "rois_with_feature": {"layer": feature["layer"], "feature": feature["feature"]},
        "search_features": {"text": "the"},
        "search_labels": {"text": "the"},
        "motif_enrichment": {"motif": "feed_forward_loop"},  # no census stored: reads nothing
    }
    missing = set(library()) - set(arguments)
    if missing:
        raise SystemExit(f"benchmark has no arguments for {sorted(missing)}")
    return arguments


def measure(
    store: CircuitStore, graph_id: str, graph_ids: list[str], label: str, args: argparse.Namespace
) -> dict[str, float | None]:
    started = time.perf_counter()
    run_id = roi_stored(store, [graph_id], "louvain").result.run_id
    roi_s = time.perf_counter() - started
    baseline = median_seconds(lambda: store.query(BASELINE, {"g": graph_id}), args.repeats)
    print(f"\n{label}")
    print(f"  baseline round trip {baseline * 1000:.1f} ms; ROI run (louvain) {roi_s:.1f} s")
    print(f"  {'query':26} {'median':>22} {'rows':>7} {'x baseline':>11}", flush=True)
    results: dict[str, float | None] = {}
    for name, values in anchors(store, graph_id, run_id, graph_ids).items():
        seconds, rows, runs = time_query(store, name, values, args.repeats, args.timeout)
        results[name] = seconds
        ratio = "" if seconds is None else f"{seconds / baseline:10.1f}x"
        print(f"  {name:26} {show(seconds, runs, args.timeout):>22} {rows:7d} {ratio}", flush=True)
    return results


def sweep(store: CircuitStore, graph: CircuitGraph, args: argparse.Namespace) -> None:
    """strongest_paths on ``graph`` at every max_length, and with thresholds at the maximum."""
    values = {"graph_id": graph.graph_id, "target_key": anchor_logit(store, graph.graph_id)}
    bound = next(p for p in get_query("strongest_paths").parameters if p.name == "max_length")
    longest = int(bound.high or 1)
    settings = [(n, 0.0) for n in range(1, longest + 1)] + [(longest, t) for t in THRESHOLDS]
    print(f"\nstrongest_paths on {graph.graph_id} (k = 10; max_length {bound.default} by default)")
    print(f"  {'max_length':>10} {'min_abs_weight':>14} {'token paths':>12} {'median':>22}")
    stopped = False
    for length, threshold in settings:
        paths = token_paths(graph, values["target_key"], length, threshold)
        if stopped and threshold == 0.0:
            print(f"  {length:10d} {threshold:14g} {paths:12,d} {'(not run)':>22}")
            continue
        run = {**values, "max_length": length, "min_abs_weight": threshold}
        seconds, _, runs = time_query(store, "strongest_paths", run, args.repeats, args.timeout)
        stopped = stopped or seconds is None
        print(
            f"  {length:10d} {threshold:14g} {paths:12,d} {show(seconds, runs, args.timeout):>22}"
        )


def layered(store: CircuitStore, nodes: int, edges: int, slug: str) -> CircuitGraph:
    document = layered_neuronpedia(nodes, edges, seed=1, slug=slug)
    graph = parse_neuronpedia(document, Path(f"{slug}.json"))
    store.write_graph(graph)
    score_stored_graph(store, graph.graph_id, pin_top=[22])
    return graph


def run_workloads(store: CircuitStore, server: str, args: argparse.Namespace) -> float | None:
    """Every workload on one server; strongest_paths' median on the 10k-node graph."""
    files = sorted(args.corpus.glob("*.json")) if args.corpus.exists() else []
    files = files if not args.skip_corpus else []
    stored: list[str] = []
    if files:
        for path in files:
            graph = load_graph(path)
            store.write_graph(graph)
            score_stored_graph(store, graph.graph_id, pin_top=[22])
            stored.append(graph.graph_id)
        label = f"[{server}] {len(stored)}-graph analogy corpus (anchored on {stored[0]})"
        measure(store, stored[0], list(stored), label, args)
    else:
        print(f"(corpus skipped: {args.corpus} absent or --skip-corpus)")
    medium = layered(store, 10_000, 200_000, "layered-10k")
    stored.append(medium.graph_id)
    label = f"[{server}] layered 10k nodes / 200k edges"
    results = measure(store, medium.graph_id, list(stored), label, args)
    sweep(store, medium, args)
    if not args.skip_large:
        large = layered(store, 20_000, 1_000_000, "layered-1m")
        stored.append(large.graph_id)
        label = f"[{server}] layered 20k nodes / 1M edges"
        measure(store, large.graph_id, list(stored), label, args)
    return results["strongest_paths"]


def verdict(server: str, seconds: float | None, args: argparse.Namespace) -> None:
    met = "met" if seconds is not None and seconds < TARGET_S else "MISSED"
    print(
        f"[{server}] strongest_paths on the 10k-node graph (defaults): "
        f"{show(seconds, args.repeats, args.timeout).strip()} (target < {TARGET_S:g} s: {met})"
    )


def empty_neo4j(store: CircuitStore) -> None:
    """Delete everything, in batches (Neo4j Community has one database: use a throwaway one)."""
    wipe = "MATCH (n) WITH n LIMIT 10000 DETACH DELETE n RETURN count(*) AS c"
    while store._write(wipe)[0]["c"]:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per query run")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--skip-large", action="store_true", help="skip the 1M-edge graph")
    parser.add_argument(
        "--neo4j",
        type=Path,
        help="connection.env of a throwaway Neo4j (.ci/neo4j/ctl start DIR): the same "
        "workloads there too, after the local server (its database is emptied first)",
    )
    args = parser.parse_args()
    verdicts: list[tuple[str, float | None]] = []
    with tempfile.TemporaryDirectory() as folder, LocalServer(Path(folder)) as server:
        endpoint = server.endpoint
        settings = ConnectionSettings(
            uri=endpoint.uri,
            user=endpoint.user,
            password=endpoint.password,
            database=endpoint.database,
            data_dir=Path(folder),
            artifact_dir=Path(folder) / "artifacts",
            read_user=endpoint.reader_user,
            read_password=endpoint.reader_password,
        )
        store = CircuitStore.open(settings)
        store.local_server = server
        try:
            verdicts.append(("arcadedb", run_workloads(store, "arcadedb", args)))
        finally:
            store.close()
        if args.neo4j:
            neo4j = CircuitStore.open(
                ConnectionSettings.from_env_file(args.neo4j, Path(folder) / "neo4j-artifacts")
            )
            try:
                empty_neo4j(neo4j)
                verdicts.append(("neo4j", run_workloads(neo4j, "neo4j", args)))
            finally:
                neo4j.close()
    print()
    for name, seconds in verdicts:
        verdict(name, seconds, args)


if __name__ == "__main__":
    main()
