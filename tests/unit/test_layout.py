"""The layout static tools see: plain packages, every import resolvable, the module table true."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import circuit_atlas

REPO = Path(__file__).resolve().parents[2]
WINGS = ("ingest", "analysis", "queries")
IMPORT_RULES = ("unresolved-import", "import-not-found", "missing-module-member")


def test_the_top_level_folders_are_the_subpackages_through_links():
    for wing in WINGS:
        link = REPO / "circuit_atlas" / wing
        assert link.is_symlink() and link.resolve() == (REPO / wing).resolve(), wing


def test_no_import_hook_maps_the_package():
    """setuptools' editable finder hook is invisible to static tools; a .pth entry is not."""
    hooks = [type(finder).__name__ for finder in sys.meta_path]
    assert not [h for h in hooks if "editable" in h.lower()], hooks
    import circuit_atlas.ingest.importers as importers

    assert Path(importers.__file__).resolve() == (REPO / "ingest" / "importers.py").resolve()


@pytest.mark.skipif(shutil.which("ty") is None, reason="ty (a dev dependency) is not installed")
def test_the_type_checker_resolves_every_import_and_finds_nothing():
    result = subprocess.run(
        ["ty", "check", "--output-format", "concise", str(REPO)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    unresolved = [
        line for line in result.stdout.splitlines() if any(f"[{r}]" in line for r in IMPORT_RULES)
    ]
    assert unresolved == [], "\n".join(unresolved)
    # and the rest: the project is kept type-checker clean
    assert result.returncode == 0, result.stdout[-4000:]


def _python_modules() -> list[Path]:
    roots = [REPO / "circuit_atlas", *(REPO / wing for wing in WINGS)]
    files = []
    for root in roots:
        for path in root.rglob("*.py"):
            relative = path.relative_to(REPO)
            if relative.parts[1] in WINGS and relative.parts[0] == "circuit_atlas":
                continue  # the same files through the links
            if path.name not in ("__init__.py", "__main__.py"):
                files.append(relative)
    return files


def _module_table() -> list[tuple[str, str]]:
    text = (REPO / "DEVELOPERS.md").read_text()
    rows = re.findall(r"^\| (`[^|]+`) \| (.+) \|$", text, re.M)
    return [(first, job) for first, job in rows if first != "module"]


def test_the_module_table_names_every_module_and_nothing_else():
    table = _module_table()
    named_files = {p for first, _ in table for p in re.findall(r"`([\w/]+\.py)`", first)}
    folders = {
        p.rstrip("/"): job for first, job in table for p in re.findall(r"`([\w/]+/)`", first)
    }
    for path in sorted(named_files) + sorted(folders):
        assert (REPO / path).exists(), f"DEVELOPERS.md names {path}, which does not exist"
    modules = _python_modules()
    assert len(modules) > 70 and len(table) > 15
    missing = []
    for module in modules:
        folder = str(module.parent)
        listed = str(module) in named_files or (
            folder in folders and re.search(rf"`{module.stem}`", folders[folder])
        )
        if not listed:
            missing.append(str(module))
    assert missing == [], f"modules missing from DEVELOPERS.md's table: {missing}"


def test_the_curated_names_resolve():
    for name in circuit_atlas.__all__:
        assert getattr(circuit_atlas, name) is not None, name


def test_every_error_is_one_import_away():
    """A caller catching our errors should not need to know which module raises them."""
    import circuit_atlas.errors as errors

    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.CircuitAtlasError)
    }
    assert defined - set(circuit_atlas.__all__) == set()


def test_every_package_is_in_the_wheel():
    """The editable install finds any folder with Python files; a wheel ships only the packages
    pyproject.toml lists (``circuit_atlas.ingest.sae_circuits`` was once left out, so the SAE
    commands failed from a wheel with ModuleNotFoundError)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = set()
    for path in _python_modules():
        parts = path.parent.parts
        if parts[0] in WINGS:
            parts = ("circuit_atlas", *parts)
        found.add(".".join(parts))
    assert found - listed == set(), "add these to [tool.setuptools] packages"


def test_the_tiny_model_config_is_defined_once():
    """The README's tiny example reads ``tests/data/sae_circuits/tiny.json``: it is the
    tests' config written out, not a copy that could drift."""
    import json

    from circuit_atlas.testing.tiny_model import TINY_CONFIG

    written = json.loads((REPO / "tests" / "data" / "sae_circuits" / "tiny.json").read_text())
    assert written == TINY_CONFIG
