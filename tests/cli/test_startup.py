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
from pathlib import Path

import pytest

from helpers.cli import run_cli
from helpers.data import bundled

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


ARRAY_LIBRARIES = ("pandas", "pyarrow", "numpy")


def imported_by(args: list[str], env: dict[str, str], report: Path) -> tuple[set[str], str]:
    """The top-level packages a ``circuit-atlas`` process holds when it exits, and its output."""
    probe = (
        "import atexit, json, runpy, sys\n"
        "def report():\n"
        "    names = {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
        f"    open({str(report)!r}, 'w').write(json.dumps(sorted(names)))\n"
        "atexit.register(report)\n"
        "sys.argv = ['circuit-atlas', *sys.argv[1:]]\n"
        "runpy.run_module('circuit_atlas.cli', run_name='__main__', alter_sys=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(report.read_text())), result.stdout


@pytest.mark.backends("arcadedb", "neo4j")
def test_listing_showing_and_cypher_load_no_array_library(bolt_env: dict[str, str], tmp_path: Path):
    """Issue 13's start-up target: `graphs` spent half a second importing pandas, pyarrow and
    numpy, for the driver's optional extras and a table printer. These commands send the
    driver plain values and print rows without pandas, so none of the three loads."""
    run_cli("ingest", str(bundled("dollar.json.gz")), env=bolt_env, check=True)
    expected = {
        ("graphs",): "gemma-dollar",
        ("graphs", "--format", "csv"): "graph_id,model,method,source_format,nodes,edges,prompt",
        ("graphs", "--json"): '"nodes": 829',
        ("show", "gemma-dollar"): "nodes: feature",
        ("cypher", "MATCH (g:Graph) RETURN g.n_edges AS edges"): "edges",
    }
    for args, shown in expected.items():
        loaded, output = imported_by(list(args), bolt_env, tmp_path / "modules.json")
        assert not loaded & {*ARRAY_LIBRARIES, *HEAVY}, (args, loaded & {*ARRAY_LIBRARIES, *HEAVY})
        assert shown in output, (args, output)
    # rm clears the graph's summaries through modules that use numpy: it still works after the
    # driver was imported without the extras, and the store is empty afterwards
    deleted = run_cli("rm", "gemma-dollar", env=bolt_env, check=True)
    assert "gemma-dollar: deleted" in deleted.stdout
    assert run_cli("graphs", env=bolt_env, check=True).stdout.strip() == "(no rows)"


def test_the_lean_driver_import_is_for_the_cli_only():
    """The CLI imports the driver without pandas/pyarrow/numpy (``cli/lean_driver.py``); the
    three still import afterwards, a second call does nothing, and neither a process that
    loaded pandas first nor a library user's store is affected."""
    lean = (
        "from circuit_atlas.cli.lean_driver import import_driver_without_dataframes as lean\n"
        "assert lean() is True and lean() is False\n"
        "import neo4j._optional_deps as extras\n"
        "assert extras.pd is None and extras.np is None and extras.pa is None\n"
        "import pandas, numpy, pyarrow\n"
        "assert pandas.DataFrame({'a': numpy.arange(2)}).shape == (2, 1)\n"
    )
    pandas_first = (
        "import pandas\n"
        "from circuit_atlas.cli.lean_driver import import_driver_without_dataframes as lean\n"
        "assert lean() is False\n"
        "import neo4j._optional_deps as extras\n"
        "assert extras.pd is pandas\n"
    )
    library = (
        "from circuit_atlas import CircuitStore\n"
        "import neo4j._optional_deps as extras\n"
        "assert extras.pd is not None and extras.np is not None\n"
    )
    for code in (lean, pandas_first, library):
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
