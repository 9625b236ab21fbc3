"""Write the README's sparse-feature-circuit example: ``tiny.json`` (the tests' tiny model
config: random weights, seed 0), ``task.jsonl`` (six token-id pairs) and ``saes/`` (random SAEs
in SAELens's layout at every site, one folder per hook).

Run from the repository root: ``python tests/data/sae_circuits/make_fixture.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for helpers

from helpers.dictionaries import random_site_saes, write_site_saes  # noqa: E402
from helpers.models import tiny_model, write_tiny_job  # noqa: E402


def main() -> None:
    write_tiny_job(HERE)  # tiny.json, task.jsonl
    write_site_saes(HERE / "saes", random_site_saes(tiny_model()))


if __name__ == "__main__":
    main()
