"""How long ``circuit-atlas`` takes to start, against ``python -c pass`` in the same run.

    python benchmarks/startup.py [--repeats 5]

Every command used to import torch (and with it transformer-lens) before parsing its arguments,
even ``--help``: 7–17 s a command on 2 cores. Now heavy libraries load only in the commands that
use them. Measured here, each the median of ``--repeats`` fresh processes:

* ``python -c pass``: the interpreter alone (the baseline);
* ``circuit-atlas --help``;
* ``circuit-atlas graphs`` against a shared local server (``db start``, started first and not
  timed): wall time, and its import overhead — the sum of the top-level imports that
  ``python -X importtime`` reports for that process, which is what the command pays before and
  while it works, over the baseline's;
* ``python -c "import torch"``: what every command paid before, for scale.

Target (issue 13): at most 0.5 s of import overhead for commands that need no model.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_OVERHEAD_S = 0.5
CLI = [sys.executable, "-m", "circuit_atlas.cli"]


def wall(command: list[str], env: dict[str, str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def import_seconds(command: list[str], env: dict[str, str], repeats: int) -> float:
    """Median over runs of the summed top-level cumulative import times (``-X importtime``)."""
    totals = []
    for _ in range(repeats):
        result = subprocess.run(
            [command[0], "-X", "importtime", *command[1:]],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        top_level = re.findall(r"^import time:\s+\d+ \|\s+(\d+) \| \S", result.stderr, re.M)
        totals.append(sum(int(us) for us in top_level) / 1e6)
    return statistics.median(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "CIRCUIT"))}
        env["CIRCUIT_ATLAS_DATA_DIR"] = data
        subprocess.run([*CLI, "db", "start"], env=env, check=True, capture_output=True)
        try:
            subprocess.run([*CLI, "graphs"], env=env, check=True, capture_output=True)  # warm
            rows = [
                ("python -c pass", [sys.executable, "-c", "pass"]),
                ("circuit-atlas --help", [*CLI, "--help"]),
                ("circuit-atlas graphs", [*CLI, "graphs"]),
                ('python -c "import torch"', [sys.executable, "-c", "import torch"]),
            ]
            walls = {name: wall(command, env, args.repeats) for name, command in rows}
            imports = {name: import_seconds(command, env, args.repeats) for name, command in rows}
        finally:
            subprocess.run([*CLI, "db", "stop"], env=env, capture_output=True)
    base_wall, base_import = walls["python -c pass"], imports["python -c pass"]
    print(f"{'command':28} {'wall s':>8} {'x pass':>8} {'imports s':>10} {'overhead s':>11}")
    for name, _ in rows:
        overhead = imports[name] - base_import
        print(
            f"{name:28} {walls[name]:8.3f} {walls[name] / base_wall:8.1f} "
            f"{imports[name]:10.3f} {overhead:11.3f}"
        )
    for name in ("circuit-atlas --help", "circuit-atlas graphs"):
        overhead = imports[name] - base_import
        verdict = "meets" if overhead <= TARGET_OVERHEAD_S else "misses"
        goal = f"the goal of {TARGET_OVERHEAD_S} s"
        print(f"{name}: {overhead:.2f} s of import overhead: {verdict} {goal}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
