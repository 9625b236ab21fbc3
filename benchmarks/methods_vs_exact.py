"""Every component attribution method against exact patching, on two models.

    python benchmarks/methods_vs_exact.py [--ig-steps 5] [--examples 16]

Models: a tiny random model built from a config (2 layers, 3 heads, MLPs; random token task)
and the shipped induction model (``circuit_atlas/data/induction_2l.pt``; its induction task).
For each method, against ``exact`` (activation patching of each edge, the quantity every method
estimates): Spearman's ρ of the edge scores, the overlap of the top 10 % of edges by |score|,
the faithfulness of the top-|score| circuits with 1, 5 and 10 % of the edges, and the wall time
with its ratio to exact's (the baseline measured in the same run). Subnetwork probing runs 60
epochs over batches of 8 (its scores are mask logits, not patching estimates, so ρ says how
far its ranking follows exact's). The table in
``docs/attribution.md`` ("How the methods compare") is this script's output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuit_atlas.ingest.attribution.circuit import select  # noqa: E402
from circuit_atlas.ingest.attribution.evaluation import circuit_metrics, faithfulness  # noqa: E402
from circuit_atlas.ingest.attribution.methods import ALL_METHODS, attribute  # noqa: E402
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel, load_model  # noqa: E402
from circuit_atlas.ingest.attribution.subnetwork_probing import ProbeSettings  # noqa: E402
from circuit_atlas.ingest.attribution.tasks import Task, TaskExample  # noqa: E402
from circuit_atlas.ingest.attribution.toy_induction import (  # noqa: E402
    induction_task,
    weights_path,
)
from circuit_atlas.testing.tiny_model import TINY_CONFIG  # noqa: E402

TINY = {**TINY_CONFIG, "d_vocab": 20}
CIRCUIT_PERCENTS = (1, 5, 10)
TOP_SHARE = 0.10


def random_task(n: int, seed: int = 1) -> Task:
    gen = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(n):
        length = int(torch.randint(5, 10, (1,), generator=gen))
        clean = torch.randint(3, int(TINY["d_vocab"]), (length,), generator=gen).tolist()
        corrupted = torch.randint(3, int(TINY["d_vocab"]), (length,), generator=gen).tolist()
        examples.append(TaskExample(clean, corrupted, (1,), (2,)))
    return Task("random", examples, "logit_diff")


def compare(name: str, model: LoadedModel, task: Task, ig_steps: int) -> list[dict]:
    rows, scores, seconds = [], {}, {}
    for method in ["exact", *(m for m in ALL_METHODS if m != "exact")]:
        start = time.perf_counter()
        probing = method == "subnetwork-probing"
        result = attribute(
            model,
            task,
            method,
            ig_steps=ig_steps,
            batch_size=8 if probing else len(task.examples),  # the probe takes Adam steps per batch
            progress=False,
            probe=ProbeSettings(epochs=60),
        )
        seconds[method] = time.perf_counter() - start
        scores[method] = result
    graph = scores["exact"].graph
    forward, backward = graph.edges()
    exact = scores["exact"].scores[forward, backward]
    k = max(1, round(TOP_SHARE * len(exact)))
    exact_top = set(np.argsort(-np.abs(exact), kind="stable")[:k].tolist())
    counts = [max(1, round(p / 100 * graph.n_edges)) for p in CIRCUIT_PERCENTS]
    for method, result in scores.items():
        values = result.scores[forward, backward]
        top = set(np.argsort(-np.abs(values), kind="stable")[:k].tolist())
        circuits = [select(graph, result.scores, "topn", n) for n in counts]
        clean, empty, kept = circuit_metrics(
            model, task, circuits, batch_size=len(task.examples), progress=False
        )
        rows.append(
            {
                "model": name,
                "method": method,
                "spearman": float(spearmanr(values, exact).statistic),
                "top": len(top & exact_top) / k,
                "faithfulness": [faithfulness(v, clean, empty) for v in kept],
                "seconds": seconds[method],
                "ratio": seconds[method] / seconds["exact"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ig-steps", type=int, default=5)
    parser.add_argument("--examples", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = [
        ("tiny random (75 edges)", load_model(TINY, dtype="float64"), random_task(args.examples)),
        ("induction (81 edges)", load_model(weights_path()), induction_task(args.examples)),
    ]
    percents = " | ".join(f"faithful @{p} %" for p in CIRCUIT_PERCENTS)
    print(f"| model | method | Spearman ρ vs exact | top-10 % overlap | {percents} | time | "
          "time / exact |")  # fmt: skip
    print("|---" * (6 + len(CIRCUIT_PERCENTS)) + "|")
    for name, model, task in cases:
        for row in compare(name, model, task, args.ig_steps):
            faithful = " | ".join(f"{round(f, 3) + 0.0:.3f}" for f in row["faithfulness"])
            print(
                f"| {row['model']} | `{row['method']}` | {row['spearman']:.3f} | "
                f"{row['top']:.2f} | {faithful} | {row['seconds'] * 1000:.0f} ms | "
                f"{row['ratio']:.2f} |"
            )


if __name__ == "__main__":
    main()
