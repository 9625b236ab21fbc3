"""The store's bulk write against the engine's own ceiling, each in a fresh process.

    python benchmarks/engine_ceiling.py [--file F.json] [--nodes 20000 --edges 1010000]
                                        [--repeats 2]

Issue 19 asks the default server's bulk path to write ≥ 300k edges/s. This script measures how
far the engine itself goes, so a reader can tell what is ours and what is the engine's:

* **engine alone**: a fresh embedded ArcadeDB database with no schema but two types, the
  graph's node rows and edges handed to ``GraphBatch`` exactly as the store hands them
  (``store/bulk_json.py``: our JSON text, the package's own entry points), timed from opening
  the batch to closing it. No claim, no ``:Feature`` identities, no summaries, no hash, no
  artifact, no indexes: the least any store built on this engine can spend.
* **store write**: ``CircuitStore.write_graph`` of the same graph into the zero-setup server the
  process hosts, as ``circuit-atlas ingest`` does (the write alone: parsing and starting the
  server are not timed).

Each measurement runs in its own interpreter and JVM, alternating, because the engine runs on
the JVM and a fresh one compiles as it goes (a warm one writes up to 2× faster, see
``benchmarks/README.md``): both sides pay that the same way. The graph is the layered
Neuronpedia file of ``ingest_end_to_end.py`` (20k nodes / 1.01M links), parsed in each child
before its timer starts. Printed: each side's edges/s, the store as a share of the engine
alone, and the 300k target as a multiple of the engine alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_EDGES_PER_SECOND = 300_000


def engine_alone(graph_file: Path, folder: Path) -> tuple[float, int]:
    """Seconds for ``GraphBatch`` to take the graph's nodes and edges, and the edge count."""
    import arcadedb_embedded as arcadedb
    import numpy as np

    from circuit_atlas.ingest import load_graph
    from circuit_atlas.local_server import _start_jvm
    from circuit_atlas.store.bulk_json import buffer_edges, create_vertices
    from circuit_atlas.store.rows import node_property_rows

    graph = load_graph(graph_file)
    rows = node_property_rows(graph)
    _start_jvm(folder)  # the JVM the local server starts, with the same arguments
    database = arcadedb.create_database(str(folder / "engine"))
    try:
        database.command("sql", "CREATE VERTEX TYPE Node")
        database.command("sql", "CREATE EDGE TYPE EDGE")
        started = time.perf_counter()
        with database.graph_batch() as batch:
            rids = np.array(create_vertices(batch, "Node", rows), dtype=object)
            sources = rids[graph.edges["source"].to_numpy()].tolist()
            targets = rids[graph.edges["target"].to_numpy()].tolist()
            buffer_edges(batch, "EDGE", sources, targets, graph, lambda _rows: None)
        seconds = time.perf_counter() - started
        stored = database.query("sql", "SELECT count(*) AS n FROM EDGE").to_list()[0]["n"]
    finally:
        database.close()
    if stored != graph.n_edges:
        raise SystemExit(f"the engine stored {stored} edges of {graph.n_edges}")
    return seconds, graph.n_edges


def store_write(graph_file: Path, folder: Path) -> tuple[float, int]:
    """Seconds for ``CircuitStore.write_graph`` on a server this process hosts."""
    from circuit_atlas.ingest import load_graph
    from circuit_atlas.store import CircuitStore

    graph = load_graph(graph_file)
    store = CircuitStore.open(data_dir=folder / "data")  # hosts the server, as `ingest` does
    try:
        started = time.perf_counter()
        result = store.write_graph(graph)
        seconds = time.perf_counter() - started
    finally:
        store.close()
    if result.path != "bulk":
        raise SystemExit(f"the store took its {result.path!r} path, not the bulk path")
    return seconds, graph.n_edges


MEASURES = {"engine": engine_alone, "store": store_write}


def measure(kind: str, graph_file: Path) -> tuple[float, int]:
    """Run one measurement in a fresh interpreter: its seconds and the graph's edge count."""
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [sys.executable, __file__, "--child", kind, str(graph_file), folder],
            capture_output=True,
            text=True,
            env={  # the zero-setup server in a fresh folder, whatever this shell points at
                **{k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "CIRCUIT"))},
                "CIRCUIT_ATLAS_PROGRESS": "0",
            },
        )
    if done.returncode != 0:
        raise SystemExit(f"{kind} measurement failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return float(answer["seconds"]), int(answer["edges"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, help="a Neuronpedia JSON (default: generated)")
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--edges", type=int, default=1_010_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, graph_file, folder = args.child
        seconds, edges = MEASURES[kind](Path(graph_file), Path(folder))
        print(json.dumps({"seconds": seconds, "edges": edges}))
        return

    from circuit_atlas.testing.synthetic import layered_neuronpedia

    with tempfile.TemporaryDirectory() as tmp:
        graph_file = args.file
        if graph_file is None:
            graph_file = Path(tmp) / "layered.json"
            print(f"writing a layered graph of {args.nodes:,} nodes / {args.edges:,} links…")
            graph_file.write_text(json.dumps(layered_neuronpedia(args.nodes, args.edges)))
        print(f"{args.repeats} fresh process(es) each; the graph is parsed in each")
        times: dict[str, list[float]] = {kind: [] for kind in MEASURES}
        edges = 0
        for repeat in range(args.repeats):
            for kind in MEASURES:
                seconds, edges = measure(kind, graph_file)
                times[kind].append(seconds)
                print(f"  run {repeat + 1} {kind:6} {seconds:6.2f} s  {edges / seconds:>9,.0f} "
                      "edges/s", flush=True)  # fmt: skip
    engine = statistics.median(times["engine"])
    store = statistics.median(times["store"])
    print(f"\nengine alone (GraphBatch, no store): {edges / engine:>9,.0f} edges/s (median)")
    print(f"store write (write_graph, bulk):     {edges / store:>9,.0f} edges/s (median) "
          f"= {engine / store:.0%} of the engine alone")  # fmt: skip
    print(f"target {TARGET_EDGES_PER_SECOND:,} edges/s = "
          f"{TARGET_EDGES_PER_SECOND * engine / edges:.1f}x the engine alone")  # fmt: skip


if __name__ == "__main__":
    main()
