"""``compare --stats`` on three analogy graphs: against graspologic's own functions, and end to end.

    python benchmarks/compare_stats.py [--by feature] [--repeats 3] [--graphs account air airplane]
                                       [--data-dir DIR] [--skip-in-process]

``compare --stats`` adds omnibus distances and one latent distribution test (200 bootstraps) per
pair. It used graspologic for both; ``analysis/compare/omnibus.py`` now computes the same
numbers without importing it. Measured here, in one run on the same three graphs (``--graphs``:
analogy file names without ``-clt-hp.json``):

* **In process**, the statistics alone: graspologic's functions as ``compare`` called them
  before (``pass_to_ranks``, ``OmnibusEmbed``, ``latent_distribution_test`` after
  ``np.random.seed(0)``; the baseline, graspologic already imported) against ours (median of
  ``--repeats``), with graspologic's import timed in a fresh process, and a check that both agree:
  the same p-values, statistics and distances to rounding.
* **End to end**, ``circuit-atlas compare A B C --stats`` in fresh processes with the progress bar
  on (``CIRCUIT_ATLAS_PROGRESS=1``), in both set-ups: against a shared local server (``db start``,
  not timed) and with the command hosting the zero-setup server itself (JVM start included).
  The baseline is one run of the same command with the graspologic functions swapped back in;
  ours is the median of ``--repeats`` plain runs, and one more run is split into stages.

Target (the performance issue): ≤ 20 s end to end, with a progress bar. Skips, saying so, when
../shared/data is absent.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TARGET_S = 20.0
BOOTSTRAPS = 200
SEED = 0
ANALOGIES = Path(__file__).resolve().parents[2] / "shared/data/graphs/neuronpedia/analogies"
CLI = [sys.executable, "-m", "circuit_atlas.cli"]
STAGES_MARK = "compare-stats-stages:"


# --- the baseline: compare --stats' statistics as they were computed with graspologic ----------


def graspologic_ranked(graphs: list[Any], by: str = "node") -> tuple[list[str], list[np.ndarray]]:
    from graspologic.utils import pass_to_ranks

    from circuit_atlas.analysis.compare.omnibus import shared_adjacencies

    shared, matrices = shared_adjacencies(graphs, by)
    return shared, [np.asarray(pass_to_ranks(m)) for m in matrices]


def graspologic_omnibus(
    graphs: list[Any],
    by: str = "node",
    n_components: int | None = None,
    ranked: tuple[list[str], list[np.ndarray]] | None = None,
) -> Any:
    from graspologic.embed import OmnibusEmbed

    from circuit_atlas.analysis.compare.omnibus import OmnibusResult
    from circuit_atlas.native_threads import jvm_safe_threads

    shared, matrices = ranked if ranked is not None else graspologic_ranked(graphs, by)
    embedder = OmnibusEmbed(  # ty: ignore[abstract-class-instantiation]
        n_components=n_components, algorithm="full", check_lcc=False
    )
    with jvm_safe_threads(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embeddings = np.asarray(embedder.fit_transform(matrices))
    ids = [g.graph_id for g in graphs]
    flat = embeddings.reshape(len(graphs), -1)
    distance = np.sqrt(((flat[:, None, :] - flat[None, :, :]) ** 2).sum(-1)) / np.sqrt(len(shared))
    return OmnibusResult(tuple(shared), embeddings, pd.DataFrame(distance, index=ids, columns=ids))


def graspologic_pvalues(
    graphs: list[Any],
    by: str = "node",
    n_bootstraps: int = BOOTSTRAPS,
    seed: int = SEED,
    max_pairs: int = 50,
    ranked: tuple[list[str], list[np.ndarray]] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    from graspologic.inference import latent_distribution_test
    from tqdm.auto import tqdm

    from circuit_atlas.native_threads import jvm_safe_threads

    _, matrices = ranked if ranked is not None else graspologic_ranked(graphs, by)
    rows = []
    pairs = list(combinations(range(len(graphs)), 2))[:max_pairs]
    for i, j in tqdm(pairs, desc="latent distribution tests", unit="pair", disable=not progress):
        np.random.seed(seed)
        with jvm_safe_threads(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stat, pvalue, _ = latent_distribution_test(
                matrices[i], matrices[j], test="dcorr", metric="euclidean",
                n_bootstraps=n_bootstraps, workers=1,
            )  # fmt: skip
        rows.append(
            {
                "graph_a": graphs[i].graph_id,
                "graph_b": graphs[j].graph_id,
                "statistic": float(stat),
                "pvalue": float(pvalue),
            }
        )
    return pd.DataFrame(rows)


# --- one CLI run inside this process, timed by stage (the child side of --cli-run) ------------


def run_cli_with_stages(implementation: str, argv: list[str]) -> None:
    """``circuit-atlas ARGV`` in this process, its main steps timed; with ``graspologic`` the
    statistics are the baseline functions above. Prints the stage times as one JSON line."""
    started = time.perf_counter()
    from circuit_atlas.analysis.compare import omnibus, pairwise, report, stored
    from circuit_atlas.cli import options
    from circuit_atlas.cli.main import _run
    from circuit_atlas.process_exit import exit_process

    stages: dict[str, float] = {}

    def timed(owner: Any, name: str, stage: str, replacement: Callable | None = None) -> None:
        function = replacement or getattr(owner, name)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            begun = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - begun

        setattr(owner, name, wrapper)

    baseline = implementation == "graspologic"
    timed(options.StoreContext, "store", "open the store (JVM and server when hosted)")
    timed(stored, "select_graph_ids", "read the graphs")
    timed(stored, "load_graphs", "read the graphs")
    timed(pairwise, "compare_graphs", "pairwise metrics")
    ranked = graspologic_ranked if baseline else None
    timed(omnibus, "ranked_adjacencies", "ranked matrices (+ graspologic import)", ranked)
    timed(omnibus, "omnibus", "omnibus embedding", graspologic_omnibus if baseline else None)
    pvalues = graspologic_pvalues if baseline else None
    timed(omnibus, "latent_distribution_pvalues", "latent distribution tests", pvalues)
    timed(report, "statistics_sections", "report sections")
    code = _run(argv)
    stages["whole command, in process"] = time.perf_counter() - started
    print(STAGES_MARK + json.dumps(stages), file=sys.stderr, flush=True)
    exit_process(code)


# --- the parent side ---------------------------------------------------------------------------


def cli_env(data: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "CIRCUIT"))}
    env["CIRCUIT_ATLAS_DATA_DIR"] = data
    env["CIRCUIT_ATLAS_PROGRESS"] = "1"  # the bar a terminal shows
    return env


def timed_run(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    begun = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - begun
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:])} failed:\n{done.stderr[-2000:]}")
    if "latent distribution tests" not in done.stderr:
        raise SystemExit("no progress bar over the latent distribution tests was drawn")
    return wall, done


def staged_run(
    implementation: str, argv: list[str], env: dict[str, str]
) -> tuple[float, dict[str, float]]:
    command = [sys.executable, __file__, "--cli-run", implementation, "--", *argv]
    wall, done = timed_run(command, env)
    line = next(x for x in done.stderr.splitlines() if x.startswith(STAGES_MARK))
    return wall, json.loads(line.removeprefix(STAGES_MARK))


def cli(command: list[str], env: dict[str, str]) -> str:
    """Run one untimed ``circuit-atlas`` command (set-up); stop with its error if it fails."""
    done = subprocess.run([*CLI, *command], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"circuit-atlas {command[0]} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def end_to_end(
    args: argparse.Namespace, files: list[Path], data: str
) -> list[tuple[str, float, float]]:
    env = cli_env(data)
    stored = {row["graph_id"] for row in json.loads(cli(["graphs", "--json"], env))}
    wanted = [path.name.removesuffix(".json") for path in files]
    if not set(wanted) <= stored:
        cli(["ingest", *map(str, files)], env)  # the command hosts the server: the bulk path
    argv = ["compare", *wanted, "--stats", "--by", args.by]
    rows = []
    cli(["db", "start"], env)
    try:
        rows.append(measure("shared server (db start)", argv, env, args.repeats))
    finally:
        subprocess.run([*CLI, "db", "stop"], env=env, capture_output=True)
    rows.append(measure("command hosts the server", argv, env, args.repeats))
    return rows


def measure(setting: str, argv: list[str], env: dict[str, str], repeats: int) -> tuple:
    print(f"\n{setting}: circuit-atlas {' '.join(argv)}")
    before, before_stages = staged_run("graspologic", argv, env)
    walls = [timed_run([*CLI, *argv], env)[0] for _ in range(repeats)]
    after_one, after_stages = staged_run("ours", argv, env)
    after = statistics.median(walls)
    print(f"{'stage':48} {'graspologic':>11} {'ours':>8}")
    for stage in dict.fromkeys([*before_stages, *after_stages]):
        print(f"{stage:48} {before_stages.get(stage, 0):10.2f}s {after_stages.get(stage, 0):7.2f}s")
    rest = [wall - stages["whole command, in process"] for wall, stages in
            ((before, before_stages), (after_one, after_stages))]  # fmt: skip
    print(f"{'interpreter start-up and exit':48} {rest[0]:10.2f}s {rest[1]:7.2f}s")
    print(f"{'wall (ours: median of ' + str(repeats) + ' plain runs)':48} {before:10.2f}s "
          f"{after:7.2f}s")  # fmt: skip
    return setting, before, after


def in_process(args: argparse.Namespace, files: list[Path]) -> None:
    from circuit_atlas.analysis.compare.omnibus import (
        latent_distribution_pvalues,
        omnibus,
        ranked_adjacencies,
    )
    from circuit_atlas.ingest import load_graph

    code = "import time; t = time.perf_counter(); import graspologic; print(time.perf_counter()-t)"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)  # fmt: skip
    graphs = [load_graph(path) for path in files]

    def ours() -> tuple[Any, pd.DataFrame]:
        ranked = ranked_adjacencies(graphs, args.by)
        return omnibus(graphs, args.by, ranked=ranked), latent_distribution_pvalues(
            graphs, args.by, ranked=ranked
        )

    def theirs() -> tuple[Any, pd.DataFrame]:
        ranked = graspologic_ranked(graphs, args.by)
        return graspologic_omnibus(graphs, args.by, ranked=ranked), graspologic_pvalues(
            graphs, args.by, ranked=ranked
        )

    import graspologic  # noqa: F401  (imported before timing: its import is timed apart)

    ours()  # warm: scikit-learn's import, paid once per command
    begun = time.perf_counter()
    base_omnibus, base_tests = theirs()
    baseline = time.perf_counter() - begun
    times = []
    for _ in range(args.repeats):
        begun = time.perf_counter()
        new_omnibus, new_tests = ours()
        times.append(time.perf_counter() - begun)
    ours_s = statistics.median(times)
    shared = len(new_omnibus.node_ids)
    print(f"{len(graphs)} graphs by {args.by}: {shared} shared nodes, {len(new_tests)} pairs, "
          f"{BOOTSTRAPS} bootstraps each")  # fmt: skip
    print(f"import graspologic (fresh process):          {float(imported.stdout):8.3f} s")
    print(f"graspologic's statistics (baseline):         {baseline:8.3f} s")
    print(f"ours (median of {args.repeats}):                        {ours_s:8.3f} s "
          f"({baseline / ours_s:.1f}x; {(baseline + float(imported.stdout)) / ours_s:.1f}x "
          "with the import)")  # fmt: skip
    same_p = new_tests["pvalue"].tolist() == base_tests["pvalue"].tolist()
    stat_gap = float(np.max(np.abs(new_tests["statistic"] - base_tests["statistic"])))
    distance_gap = float(np.max(np.abs(new_omnibus.distances - base_omnibus.distances).to_numpy()))
    print(f"agreement: p-values {'identical' if same_p else 'DIFFER'} "
          f"({', '.join(f'{p:.4f}' for p in new_tests['pvalue'])}); statistics within "
          f"{stat_gap:.1e}; omnibus distances within {distance_gap:.1e}")  # fmt: skip
    if not same_p:
        raise SystemExit("the p-values differ from graspologic's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--by", default="feature", choices=["feature", "node", "edge"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--graphs", nargs=3, default=["account", "air", "airplane"])
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--data-dir", type=Path, help="a data folder to reuse (default: a fresh "
                        "one); the graphs are ingested unless it holds them already")  # fmt: skip
    parser.add_argument("--cli-run", choices=["ours", "graspologic"], help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.cli_run:
        run_cli_with_stages(args.cli_run, [x for x in rest if x != "--"])
        return
    files = [ANALOGIES / f"{name}-clt-hp.json" for name in args.graphs]
    if not all(path.exists() for path in files):
        print(f"skipped: the analogy graphs are absent ({ANALOGIES}: ../shared/data)")
        return
    if not args.skip_in_process:
        in_process(args, files)
    if args.data_dir is not None:
        rows = end_to_end(args, files, str(args.data_dir))
    else:
        with tempfile.TemporaryDirectory() as data:
            rows = end_to_end(args, files, data)
    print(f"\n{'end to end':28} {'graspologic':>11} {'ours':>8} {'ratio':>7}")
    for setting, before, after in rows:
        print(f"{setting:28} {before:10.2f}s {after:7.2f}s {before / after:6.1f}x")
    worst = max(after for _, _, after in rows)
    verdict = "meets" if worst <= TARGET_S else "misses"
    print(f"slowest set-up {worst:.2f} s: {verdict} the target of {TARGET_S:.0f} s")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
