"""Ingest throughput: naive per-batch MERGE vs the store's write paths, in one run.

    python benchmarks/ingest.py [--nodes 20000 --edges 1000000] [--analogies DIR]
                                [--neo4j DIR/connection.env]

Runs on the zero-setup local server (started here, in a temporary folder). For each workload it
loads the same graph through (a) the naive path — ``UNWIND $rows MERGE`` in batches of 10k, one
transaction per batch, (b) the Bolt path — ``UNWIND … CREATE`` batches, each committed behind
the graph's ``loading`` claim, and
(c) the bulk path — the in-process engine's GraphBatch; it prints edges/s and the ratios to (a).
With ``--neo4j`` (the file ``.ci/neo4j/ctl start DIR`` writes) it also runs (a) and (b) against
that Neo4j, in the same run, and prints both servers side by side. The Neo4j database is
emptied before each path: use a throwaway server.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.neuronpedia import parse_neuronpedia
from circuit_atlas.local_server import LocalServer
from circuit_atlas.store import CircuitStore, ConnectionSettings
from circuit_atlas.store.rows import edge_property_rows, node_property_rows
from circuit_atlas.testing.synthetic import synthetic_neuronpedia

NAIVE_BATCH = 10_000


def naive_ingest(store: CircuitStore, graph: CircuitGraph) -> None:
    """The baseline: MERGE everything, 10k rows per transaction."""
    gid = graph.graph_id
    nodes = node_property_rows(graph)
    keys = [n["node_key"] for n in nodes]
    weights = [e["weight"] for e in edge_property_rows(graph)]
    src, dst = graph.edges["source"].to_numpy(), graph.edges["target"].to_numpy()
    with store.driver.session(database=store.database) as session:
        for i in range(0, len(nodes), NAIVE_BATCH):
            rows = nodes[i : i + NAIVE_BATCH]
            session.execute_write(
                lambda tx, rows=rows: tx.run(
                    "UNWIND $rows AS r MERGE (n:Node {graph_id: r.graph_id, node_key: r.node_key}) "
                    "SET n += r",
                    rows=rows,
                ).consume()
            )
        for i in range(0, len(weights), NAIVE_BATCH):
            rows = [
                {"s": keys[src[j]], "t": keys[dst[j]], "w": weights[j]}
                for j in range(i, min(i + NAIVE_BATCH, len(weights)))
            ]
            session.execute_write(
                lambda tx, rows=rows: tx.run(
                    "UNWIND $rows AS r MATCH (a:Node {graph_id: $g, node_key: r.s}) "
                    "MATCH (b:Node {graph_id: $g, node_key: r.t}) "
                    "MERGE (a)-[e:EDGE]->(b) SET e.weight = r.w",
                    rows=rows,
                    g=gid,
                ).consume()
            )


def timed(label: str, graphs: list[CircuitGraph], write) -> float:
    edges = sum(g.n_edges for g in graphs)
    started = time.perf_counter()
    for graph in graphs:
        write(graph)
    seconds = time.perf_counter() - started
    rate = edges / seconds
    print(f"  {label:28} {edges:>10,} edges  {seconds:8.1f} s  {rate:>10,.0f} edges/s", flush=True)
    return rate


def run_neo4j(
    graphs: list[CircuitGraph], env_file: Path, root: Path, arcadedb: dict[str, float]
) -> None:
    rates = {}
    for path in ("naive", "bolt"):
        store = CircuitStore.open(
            ConnectionSettings.from_env_file(env_file, root / f"neo4j_{path}")
        )
        while store._write("MATCH (n) WITH n LIMIT 10000 DETACH DELETE n RETURN count(*) AS c")[0][
            "c"
        ]:
            pass
        if path == "naive":
            rates[path] = timed(
                "neo4j naive UNWIND MERGE", graphs, lambda g, s=store: naive_ingest(s, g)
            )
        else:
            rates[path] = timed("neo4j bolt: batched", graphs, lambda g, s=store: s.write_graph(g))
        store.close()
    print(
        f"  neo4j ratio bolt/naive = {rates['bolt'] / rates['naive']:.1f}x; "
        f"best ArcadeDB path / best Neo4j path = "
        f"{max(arcadedb.values()) / max(rates.values()):.1f}x",
        flush=True,
    )


def run_workload(
    name: str, graphs: list[CircuitGraph], server: LocalServer, root: Path
) -> dict[str, float]:
    print(
        f"\n{name}: {len(graphs)} graph(s), {sum(g.n_nodes for g in graphs):,} nodes, "
        f"{sum(g.n_edges for g in graphs):,} edges",
        flush=True,
    )
    rates = {}
    for path in ("naive", "bolt", "bulk"):
        database = f"{name}_{path}"
        server.create_database(database)
        endpoint = server.endpoint
        store = CircuitStore.open(
            ConnectionSettings(
                uri=endpoint.uri,
                user=endpoint.user,
                password=endpoint.password,
                database=database,
                artifact_dir=root / database,
            )
        )
        store.local_server = server
        if path == "naive":
            rates[path] = timed(
                "naive UNWIND MERGE (10k)", graphs, lambda g, s=store: naive_ingest(s, g)
            )
        else:
            label = "bolt: UNWIND CREATE batches" if path == "bolt" else "bulk: embedded GraphBatch"
            rates[path] = timed(
                label, graphs, lambda g, s=store, p=path: s.write_graph(g, force_bolt=p == "bolt")
            )
        store.close()
    print(
        f"  ratio bolt/naive = {rates['bolt'] / rates['naive']:.1f}x, "
        f"bulk/naive = {rates['bulk'] / rates['naive']:.1f}x",
        flush=True,
    )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    default_analogies = (
        Path(__file__).resolve().parents[2] / "shared/data/graphs/neuronpedia/analogies"
    )
    parser.add_argument("--analogies", type=Path, default=default_analogies)
    parser.add_argument("--neo4j", type=Path, help="connection.env of a throwaway Neo4j")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalServer(Path(tmp) / "server") as server:
        print(
            f"building a synthetic graph of {args.nodes:,} nodes / {args.edges:,} edges…",
            flush=True,
        )
        synthetic = parse_neuronpedia(
            synthetic_neuronpedia(args.nodes, args.edges, n_layers=26, n_pos=12, slug="synthetic"),
            Path("synthetic.json"),
        )
        rates = run_workload("synthetic", [synthetic], server, Path(tmp))
        if args.neo4j:
            run_neo4j([synthetic], args.neo4j, Path(tmp), rates)
        if args.analogies.exists():
            graphs = [load_graph(p) for p in sorted(args.analogies.glob("*.json"))]
            rates = run_workload("analogies", graphs, server, Path(tmp))
            if args.neo4j:
                run_neo4j(graphs, args.neo4j, Path(tmp), rates)
        else:
            print(f"\n(analogy graphs not found at {args.analogies}; skipped)")


if __name__ == "__main__":
    main()
