"""The CLI starts fast: heavy libraries load only in the commands that use them.

Every command used to import torch (even ``--help``: 7–17 s a command on 2 cores). Now
``circuit_atlas.cli`` imports click and our own light modules; torch, transformer-lens,
graspologic, matplotlib and scikit-learn are imported inside the commands that need them, and
``benchmarks/startup.py`` times the result.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.cli import run_cli

HEAVY = ("torch", "transformer_lens", "graspologic", "matplotlib", "sklearn")


def loaded_after(code: str) -> list[str]:
    """Which heavy top-level packages a fresh interpreter holds after running ``code``."""
    report = "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    probe = f"{code}\nimport sys, json\n{report}"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    modules = set(json.loads(result.stdout.strip().splitlines()[-1]))
    return sorted(modules & {*HEAVY, "pandas", "neo4j"})


def test_importing_the_cli_loads_no_heavy_library():
    assert loaded_after("import circuit_atlas.cli") == []


def test_importing_the_package_and_its_curated_names_stays_light():
    assert loaded_after("import circuit_atlas") == []
    # the names resolve on first use, from their homes
    assert set(loaded_after("from circuit_atlas import CircuitStore, ConnectionSettings")) <= {
        "neo4j",
        "pandas",
    }


@pytest.mark.parametrize(
    "args",
    [["--help"], ["graphs", "--help"], ["cypher", "--help"], ["roi", "--help"], ["db", "--help"]],
)
def test_help_of_commands_without_a_model_loads_no_heavy_library(args: list[str]):
    code = (
        "import sys\nfrom circuit_atlas.cli.main import cli\n"
        f"try:\n    cli.main(args={args!r}, standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    assert not set(loaded_after(code)) & set(HEAVY)


def test_lazy_choices_still_list_and_check_the_registries():
    """--method's choices come from the registry when asked for, not at import."""
    result = run_cli("attribute", "--help", check=True)
    assert "eap-ig-inputs" in result.stdout and "exact" in result.stdout
    bad = run_cli("attribute", "--model", "m.json", "--task", "t.csv", "--method", "nope")
    assert bad.returncode == 2 and "'nope' is not one of" in bad.stderr
    roi = run_cli("roi", "--help", check=True)
    assert "leiden" in roi.stdout and "cooccurrence" in roi.stdout
