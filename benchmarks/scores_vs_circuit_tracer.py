"""Our scores and pruning against circuit-tracer's own ``compute_graph_scores`` and
``prune_graph``, on the same graph, in one run.

    python benchmarks/scores_vs_circuit_tracer.py [--nodes 10000 --edges 1000000 --seed 0]
        [--circuit-tracer-python PYTHON]

circuit-tracer 0.5.0 pins transformers ≤ 4.57, so it lives in a side environment
(``CIRCUIT_TRACER_PYTHON``, as ``tests/data/circuit_tracer/make_fixture.py`` uses): the graph is
written to a temporary ``.npz`` in circuit-tracer's node order (features, errors, tokens,
logits) and that Python imports circuit-tracer's pure functions and times them on a stand-in
``Graph`` holding exactly the fields they read (its dense adjacency on the CPU, as it keeps it).
Ours run here on the sparse matrix. Both sides time one warm run after a warm-up; the script
checks both agree (replacement and completeness to 1e-6, the same nodes kept by pruning) and
prints each time and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scores import random_attribution_dag  # noqa: E402  (the benchmark next to this one)

from circuit_atlas.analysis.scores.attribution_matrix import (  # noqa: E402
    ERROR,
    FEATURE,
    LOGIT,
    TOKEN,
)
from circuit_atlas.analysis.scores.pruning import prune  # noqa: E402
from circuit_atlas.analysis.scores.replacement import graph_scores  # noqa: E402

THEIRS = r"""
import json, sys, time, types
import numpy as np, torch
from circuit_tracer.graph import compute_graph_scores, prune_graph
data = np.load(sys.argv[1])
n_features, n_tokens = int(data["n_features"]), int(data["n_tokens"])
graph = types.SimpleNamespace(
    adjacency_matrix=torch.from_numpy(data["adjacency"]),
    input_tokens=torch.zeros(n_tokens, dtype=torch.long),
    logit_targets=list(range(int(data["n_logits"]))),
    logit_probabilities=torch.from_numpy(data["logit_probabilities"]),
    selected_features=torch.arange(n_features),
    n_pos=n_tokens,
    cfg=types.SimpleNamespace(n_layers=int(data["n_layers"])),  # error nodes: n_layers × n_pos
)
torch.set_num_threads(1)
compute_graph_scores(graph); prune_graph(graph)  # warm-up
started = time.perf_counter(); replacement, completeness = compute_graph_scores(graph)
scores_s = time.perf_counter() - started
started = time.perf_counter(); result = prune_graph(graph, 0.8, 0.98)
prune_s = time.perf_counter() - started
print(json.dumps({"replacement": float(replacement), "completeness": float(completeness),
                  "scores_s": scores_s, "prune_s": prune_s,
                  "node_mask": result.node_mask.numpy().astype(int).tolist()}))
"""


def circuit_tracer_order(kind: np.ndarray) -> np.ndarray:
    """Row order circuit-tracer's functions assume: features, errors, tokens, logits."""
    return np.concatenate([np.flatnonzero(kind == k) for k in (FEATURE, ERROR, TOKEN, LOGIT)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--circuit-tracer-python", default=os.environ.get("CIRCUIT_TRACER_PYTHON"))
    args = parser.parse_args()
    if not args.circuit_tracer_python:
        sys.exit("give --circuit-tracer-python (a Python with circuit-tracer 0.5.0 installed)")

    matrix = random_attribution_dag(args.nodes, args.edges, args.seed)
    print(f"random attribution DAG: {matrix.n:,} nodes, {matrix.adjacency.nnz:,} edges")
    graph_scores(matrix), prune(matrix)  # warm-up
    started = time.perf_counter()
    ours = graph_scores(matrix)
    ours_scores = time.perf_counter() - started
    started = time.perf_counter()
    pruning = prune(matrix, 0.8, 0.98)
    ours_prune = time.perf_counter() - started

    order = circuit_tracer_order(matrix.kind)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "graph.npz"
        np.savez(
            path,
            adjacency=matrix.adjacency[order][:, order].toarray().astype(np.float32),
            logit_probabilities=matrix.logit_weights[order][matrix.kind[order] == LOGIT].astype(
                np.float32
            ),
            n_features=int((matrix.kind == FEATURE).sum()),
            n_tokens=int((matrix.kind == TOKEN).sum()),
            n_logits=int((matrix.kind == LOGIT).sum()),
            n_layers=int((matrix.kind == ERROR).sum()) // int((matrix.kind == TOKEN).sum()),
        )
        run = subprocess.run([args.circuit_tracer_python, "-c", THEIRS, str(path)],
                             capture_output=True, text=True)  # fmt: skip
        if run.returncode != 0:
            sys.exit(f"circuit-tracer's side failed:\n{run.stderr[-3000:]}")
    theirs = json.loads(run.stdout.strip().splitlines()[-1])

    assert abs(theirs["replacement"] - ours.replacement) < 1e-6, (theirs, ours)
    assert abs(theirs["completeness"] - ours.completeness) < 1e-6, (theirs, ours)
    kept_theirs = np.array(theirs["node_mask"], dtype=bool)
    kept_ours = pruning.node_mask[order]
    agree = int((kept_theirs == kept_ours).sum())
    print(f"scores agree: replacement {ours.replacement:.6f}, completeness {ours.completeness:.6f}")
    print(f"pruning 0.8/0.98: {int(kept_ours.sum())} nodes kept by ours, "
          f"{int(kept_theirs.sum())} by circuit-tracer, same on {agree}/{matrix.n}")  # fmt: skip
    print(f"{'':34}{'circuit-tracer':>16}{'ours':>10}{'ratio':>8}")
    for name, t_theirs, t_ours in (("compute_graph_scores / graph_scores", theirs["scores_s"],
                                    ours_scores), ("prune_graph / prune", theirs["prune_s"],
                                                   ours_prune)):  # fmt: skip
        print(f"{name:34}{t_theirs:14.3f} s{t_ours:8.3f} s{t_theirs / t_ours:7.1f}x")


if __name__ == "__main__":
    main()
