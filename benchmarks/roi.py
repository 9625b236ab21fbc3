"""Every ROI method on a 20,000-node / 1,000,000-edge graph: time, peak memory, recovery.

    python benchmarks/roi.py [--nodes 20000 --edges 1000000 --blocks 20 --timeout 900]

The graph is a planted weighted, directed SBM (70 % of edges inside blocks), so each run also
reports the adjusted Rand index against the planted blocks. Each method runs in its own
process, so its peak resident memory (``ru_maxrss``) is its own; a method that exceeds
``--timeout`` is reported as such. The baseline, measured in the same run, is the time to build
the symmetric affinity and compute modularity of the planted partition — the work every method
shares. Target: Leiden < 30 s.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np
import scipy.sparse as sp

from circuit_atlas.analysis.roi.affinity import planted_affinity
from circuit_atlas.analysis.roi.algorithms import METHODS, RoiParams
from circuit_atlas.analysis.roi.quality import modularity


def planted_graph(n: int, m: int, blocks: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = np.sort(rng.integers(0, blocks, n))
    starts = np.searchsorted(truth, np.arange(blocks))
    ends = np.append(starts[1:], n)
    inside = rng.random(m) < 0.7
    source = rng.integers(0, n, m)
    block = truth[source]
    target = np.where(
        inside,
        starts[block] + (rng.random(m) * (ends[block] - starts[block])).astype(np.int64),
        rng.integers(0, n, m),
    )
    keep = source != target
    weights = rng.exponential(1.0, keep.sum()) * np.sign(rng.normal(size=keep.sum()))
    matrix = sp.csr_matrix((weights, (target[keep], source[keep])), shape=(n, n))
    matrix.sum_duplicates()
    return matrix, truth


def _run(method: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    from sklearn.metrics import adjusted_rand_score

    matrix, truth = planted_graph(args.nodes, args.edges, args.blocks, args.seed)
    affinity = planted_affinity(matrix)
    k = args.blocks if method == "spectral-sklearn" else None
    started = time.perf_counter()
    labels = METHODS[method](affinity.matrix, RoiParams(seed=0, k=k, max_k=args.blocks + 5))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        (seconds, peak_mb, adjusted_rand_score(truth, labels.labels), labels.labels.max() + 1)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--methods", nargs="*", default=sorted(METHODS))
    args = parser.parse_args()

    matrix, truth = planted_graph(args.nodes, args.edges, args.blocks, args.seed)
    started = time.perf_counter()
    affinity = planted_affinity(matrix)
    planted_q = modularity(affinity.matrix, truth)
    baseline = time.perf_counter() - started
    print(f"planted SBM: {args.nodes:,} nodes, {matrix.nnz:,} directed edges, {args.blocks} blocks")
    print(f"baseline (affinity + modularity of the planted partition): {baseline:.2f} s, "
          f"Q = {planted_q:.3f}")  # fmt: skip
    print(f"{'method':18} {'time':>9} {'x base':>8} {'peak RSS':>10} {'ARI':>6} {'ROIs':>5}")
    context = mp.get_context("spawn")
    for method in args.methods:
        queue: mp.Queue = context.Queue()
        process = context.Process(target=_run, args=(method, args, queue))
        process.start()
        process.join(args.timeout)
        if process.is_alive():
            process.kill()
            print(f"{method:18} {'> ' + str(int(args.timeout)) + ' s':>9}  (stopped)")
            continue
        if process.exitcode != 0 or queue.empty():
            print(f"{method:18} failed (exit code {process.exitcode})")
            continue
        seconds, peak_mb, ari, rois = queue.get()
        print(f"{method:18} {seconds:8.1f}s {seconds / baseline:7.1f}x {peak_mb:8.0f} MB "
              f"{ari:6.3f} {rois:5d}")  # fmt: skip


if __name__ == "__main__":
    main()
