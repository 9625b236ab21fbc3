"""Ingest as users see it: ``circuit-atlas ingest`` timed from the shell, against ``json.load``.

    python benchmarks/ingest_end_to_end.py [--file F.json] [--nodes 20000 --edges 1010000]
                                           [--analogies DIR] [--synthetic-graphs 1000]
                                           [--synthetic-links 5000] [--skip-hosted]
                                           [--skip-warm]

Every figure here is **end to end**: a fresh ``circuit-atlas`` process, from interpreter start to
exit (parsing, validation, path bounds, summaries, artifact, the write, starting the server when
the command hosts it), on a fresh data folder. Workloads, each measured the two ways users run
it:

* **hosted**: no server running; the command starts the zero-setup server itself;
* **shared**: ``circuit-atlas db start`` first (not timed), as a team or a notebook works; the
  command hands the graph to that server's bulk channel (``store/bulk_channel.py``);
* **warm**: as shared, but the server has already taken one ingest of a large graph of the
  same size (another seed and another model name, so it shares no ``:Feature`` with the
  graphs timed; not timed), as a long-running team server has. The engine runs on the JVM, whose
  compiler is cold in a fresh server: the same ingest into a warm server is up to 2x faster
  (``benchmarks/README.md``, "Where the ingest time goes").

1. One large graph: a layered Neuronpedia file (``layered_neuronpedia``, 20k nodes / 1.01M
   links, about 78 MB; or ``--file``). Baseline in the same run: ``json.load`` of the same file
   in a fresh process (its own timer, interpreter start excluded). Target: ingest ≤ 5×.
   The write alone (what ``ingest`` reports per graph) is printed as edges/s too.
2. The 57 analogy graphs (``--analogies``; skipped when absent) with one ``ingest FOLDER``.
3. ``--synthetic-graphs`` graphs of ``--synthetic-links`` links each, one ``ingest FOLDER``.

For the corpora the ratio printed is their end-to-end edges/s over the single large graph's
(target ≥ 80 %).
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

from circuit_atlas.testing.synthetic import layered_neuronpedia, synthetic_neuronpedia

DEFAULT_ANALOGIES = Path(__file__).resolve().parents[2] / "shared/data/graphs/neuronpedia/analogies"
JSON_LOAD = "import json, sys, time; t = time.perf_counter(); json.load(open(sys.argv[1])); " \
    "print(time.perf_counter() - t)"  # fmt: skip


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "circuit_atlas.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )


def timed_ingest(
    data_dir: Path, target: Path, shared: bool, warm_with: Path | None = None
) -> tuple[float, list[dict]]:
    """Wall seconds of one ``ingest`` and its per-graph rows (``--format json``); with
    ``warm_with``, the shared server first ingests that file (not timed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "CIRCUIT_ATLAS"))}
    env["CIRCUIT_ATLAS_DATA_DIR"] = str(data_dir)
    env["CIRCUIT_ATLAS_PROGRESS"] = "0"
    if shared:
        cli(env, "db", "start")
    try:
        if warm_with is not None:
            cli(env, "ingest", str(warm_with))
        started = time.perf_counter()
        done = cli(env, "ingest", str(target), "--format", "json")
        seconds = time.perf_counter() - started
    finally:
        if shared:
            cli(env, "db", "stop")
    return seconds, json.loads(done.stdout)


def report(label: str, seconds: float, rows: list[dict], baseline: float | None) -> float:
    edges = sum(r["edges"] for r in rows)
    written = sum(r["seconds"] for r in rows if r["seconds"])
    rate = edges / seconds
    line = f"  {label:34} {seconds:7.1f} s  {rate:>9,.0f} edges/s end to end"
    if written:
        line += f"  (write alone {edges / written:>9,.0f} edges/s)"
    if baseline is not None:
        line += f"  = {seconds / baseline:.1f}x json.load"
    print(line, flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, help="a Neuronpedia JSON (default: generated)")
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--edges", type=int, default=1_010_000)
    parser.add_argument("--analogies", type=Path, default=DEFAULT_ANALOGIES)
    parser.add_argument("--synthetic-graphs", type=int, default=1000)
    parser.add_argument("--synthetic-links", type=int, default=5000)
    parser.add_argument("--skip-hosted", action="store_true", help="only the shared server")
    parser.add_argument("--skip-warm", action="store_true", help="no warm shared server runs")
    args = parser.parse_args()
    modes = [("shared", True)] if args.skip_hosted else [("hosted", False), ("shared", True)]
    if not args.skip_warm:
        modes.append(("warm", True))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        big = args.file
        if big is None:
            big = root / "layered.json"
            print(f"writing a layered graph of {args.nodes:,} nodes / {args.edges:,} links…")
            big.write_text(json.dumps(layered_neuronpedia(args.nodes, args.edges)))
        warm = root / "warm-up.json"
        if not args.skip_warm:
            document = layered_neuronpedia(args.nodes, args.edges, seed=1, slug="warm-up")
            document["metadata"]["scan"] = "warm-up-model"
            warm.write_text(json.dumps(document))
        load = subprocess.run(
            [sys.executable, "-c", JSON_LOAD, str(big)], capture_output=True, text=True, check=True
        )
        baseline = float(load.stdout)
        print(f"\none graph, {big.stat().st_size / 2**20:.1f} MiB: json.load {baseline:.2f} s")
        single: dict[str, float] = {}
        for mode, shared in modes:
            warm_with = warm if mode == "warm" else None
            seconds, rows = timed_ingest(root / f"big-{mode}", big, shared, warm_with)
            single[mode] = report(f"ingest ({mode})", seconds, rows, baseline)
        corpora: list[tuple[str, Path]] = []
        if args.analogies.is_dir():
            corpora.append((f"{len(list(args.analogies.glob('*.json')))} analogy graphs",
                            args.analogies))  # fmt: skip
        else:
            print(f"\n(analogy graphs not found at {args.analogies}; skipped)")
        if args.synthetic_graphs:
            folder = root / "synthetic"
            folder.mkdir()
            for i in range(args.synthetic_graphs):
                document = synthetic_neuronpedia(
                    max(args.synthetic_links // 20, 40), args.synthetic_links, seed=i, slug=f"s{i}"
                )
                (folder / f"s{i}.json").write_text(json.dumps(document))
            corpora.append(
                (
                    f"{args.synthetic_graphs} synthetic graphs of {args.synthetic_links:,} links",
                    folder,
                )  # fmt: skip
            )
        for name, folder in corpora:
            print(f"\n{name}:")
            for mode, shared in modes:
                warm_with = warm if mode == "warm" else None
                seconds, rows = timed_ingest(
                    root / f"{folder.name}-{mode}", folder, shared, warm_with
                )
                rate = report(f"ingest FOLDER ({mode})", seconds, rows, None)
                print(f"    = {rate / single[mode]:.0%} of the single large graph's edges/s")


if __name__ == "__main__":
    main()
