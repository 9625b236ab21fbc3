"""README.md runs as written: every shell example in order on a fresh data folder, then every
Python snippet, from a copy of the repository root.

What cannot run here is swapped for its nearest runnable form, and each swap is listed below
with its reason (and checked still to match a README line, so the list cannot rot): the model
part of the demo (its own test runs it: ``test_local_server.py``), the attribution examples
(on the tiny config of ``helpers.models``; SmolLM2 takes minutes to load here, GPT-2 needs a GPU
and its weights), transcoder training (its ``--help``: minutes on SmolLM2) and the ``<run id>``
placeholders (the id the ROI command printed).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from helpers.data import SHARED, needs_shared
from helpers.models import write_tiny_job

pytestmark = [pytest.mark.slow, needs_shared()]

REPO = Path(__file__).resolve().parents[2]


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


RUN_ID = "RUN_ID_FROM_THE_ROI_COMMAND"


def shell_commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, quoted newlines kept, comments dropped,
    ``<run id …>`` placeholders marked for the id an earlier ``roi`` printed."""
    block = re.sub(r"<run id[^>]*>", RUN_ID, block)
    commands, pending = [], ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.rstrip().endswith("\\"):
            pending = pending.rstrip()[:-1]
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        if words:
            commands.append(shlex.join(words))
        pending = ""
    assert not pending, f"unterminated command in README: {pending!r}"
    return commands


def readme() -> str:
    return (REPO / "README.md").read_text()


def commands_section() -> str:
    """README's "Commands" section: the examples a user runs (Set up is what .ci/run runs; the
    Neo4j section needs Docker; the benchmarks have their own entry in benchmarks/README.md)."""
    text = readme()
    start = text.index("\n## Commands\n")
    return text[start : text.index("\n## ", start + 1)]


class Workspace:
    """A scratch copy of the repository root (links to the folders the examples read), so the
    files the examples write (reports, JSON) land outside the checkout."""

    def __init__(self, root: Path) -> None:
        self.cwd = root / "repo"
        self.cwd.mkdir(parents=True)
        for name in ("circuit_atlas", "examples", "tests"):
            (self.cwd / name).symlink_to(REPO / name)
        (root / "shared").symlink_to(SHARED.parent)
        self.config, self.task = write_tiny_job(root / "tiny")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "CIRCUIT"))}
        self.env["CIRCUIT_ATLAS_DATA_DIR"] = str(root / "data")
        self.run_id: str | None = None

    def run(self, command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        words = shlex.split(command)
        assert words[0] == "circuit-atlas", command
        result = subprocess.run(
            [sys.executable, "-m", "circuit_atlas.cli", *words[1:]],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr}"
        return result

    def write_decoders(self) -> None:
        """decoders.npz for the features of the clt-hp graphs (random unit directions)."""
        rows = json.loads(
            self.run(
                "circuit-atlas cypher 'MATCH (f:Feature)<-[:INSTANCE_OF]-(:Node)-[:IN_GRAPH]->"
                '(g:Graph) WHERE g.graph_id CONTAINS "clt-hp" '
                "RETURN DISTINCT f.layer AS layer, f.feature AS feature' --format json"
            ).stdout
        )
        vectors = np.random.default_rng(0).normal(size=(len(rows), 8))
        np.savez(
            self.cwd / "decoders.npz",
            schema_version=1,
            layer=np.array([r["layer"] for r in rows], dtype=np.int64),
            feature=np.array([r["feature"] for r in rows], dtype=np.int64),
            vectors=vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
        )


def tiny_attribution(ws: Workspace) -> str:
    return (
        f"circuit-atlas attribute --model {ws.config} --task {ws.task} --method eap-ig-inputs "
        "--ig-steps 5 --graph-id smollm2-135m-ioi-eap-ig-inputs"
    )


def tiny_gpu_example(ws: Workspace) -> str:
    return (
        f"circuit-atlas attribute --model {ws.config} --task {ws.task} --method eap "
        "--metric logit_diff --select greedy --edges 20 --out gt.json --graph-id tiny-gt"
    )


# A README command starting with the key runs as the value (a function of the workspace).
SWAPS: dict[str, Callable[[Workspace], str]] = {
    # the model part has its own test; here the bundled graphs matter
    "circuit-atlas demo": lambda ws: "circuit-atlas demo --no-model",
    "circuit-atlas attribute --model smollm2-135m": tiny_attribution,
    # minutes on SmolLM2 (and the tiny model has no tokenizer for text): the recipe is tested
    # in tests/unit/test_transcoder_training.py, its SmolLM2 result by the demo's test
    "circuit-atlas train-transcoders --model smollm2-135m": lambda ws: (
        "circuit-atlas train-transcoders --help"
    ),
    "circuit-atlas attribute --model gpt2": tiny_gpu_example,
}
# Files a command needs that the README says how to make.
PREPARE: dict[str, Callable[[Workspace], None]] = {
    "circuit-atlas roi --contains clt-hp --decoders decoders.npz": Workspace.write_decoders,
}
PYTHON_SWAPS = {
    'load_model("smollm2-135m", device="cpu", dtype="float32")': "load_model({config!r})",
    'load_task("examples/ioi.csv", model)': "load_task({task!r}, model)",
}


def planned(ws: Workspace, command: str) -> str:
    for prefix, swap in SWAPS.items():
        if command.startswith(prefix):
            return swap(ws)
    if RUN_ID in command:
        assert ws.run_id, "a query needs the run id of an earlier roi command"
        command = command.replace(RUN_ID, ws.run_id)
    return command


def test_every_swap_and_preparation_matches_a_readme_command():
    commands = [c for b in fenced_blocks(commands_section(), "bash") for c in shell_commands(b)]
    for prefix in [*SWAPS, *PREPARE]:
        assert any(c.startswith(prefix) for c in commands), prefix
    text = readme()
    for original in PYTHON_SWAPS:
        assert original in text, original


def test_the_readme_runs_as_written(tmp_path: Path):
    ws = Workspace(tmp_path)
    blocks = fenced_blocks(commands_section(), "bash")
    commands = [c for block in blocks for c in shell_commands(block)]
    assert len(commands) > 30 and commands[0] == "circuit-atlas db start"
    try:
        for command in commands:
            for prefix, prepare in PREPARE.items():
                if command.startswith(prefix):
                    prepare(ws)
            result = ws.run(planned(ws, command))
            if command.startswith("circuit-atlas roi") and (
                match := re.search(r"^run (\S+):", result.stdout, re.M)
            ):
                ws.run_id = match.group(1)
    finally:
        subprocess.run(
            [sys.executable, "-m", "circuit_atlas.cli", "db", "stop"],
            env=ws.env,
            capture_output=True,
            timeout=120,
        )
    assert (ws.cwd / "compare.html").is_file() and (ws.cwd / "dollar-rois.html").is_file()

    snippets = "\n\n".join(fenced_blocks(commands_section(), "python"))
    for original, swap in PYTHON_SWAPS.items():
        snippets = snippets.replace(original, swap.format(config=str(ws.config), task=str(ws.task)))
    result = subprocess.run(
        [sys.executable, "-"],
        input=snippets,
        cwd=ws.cwd,
        env=ws.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    printed = [float(v) for v in result.stdout.split()[-4:]]
    assert all(0 <= v <= 1 for v in printed)  # replacement and completeness scores
