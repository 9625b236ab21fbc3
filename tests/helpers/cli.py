"""Run ``circuit-atlas`` as a user would: a subprocess, its output, its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, check: bool = False
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "circuit_atlas.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"circuit-atlas {' '.join(args)} failed:\n{result.stderr}")
    return result


def cypher_json(env: dict[str, str], query: str, **params: str) -> list[dict]:
    """Rows of ``circuit-atlas cypher QUERY --format json`` run as a user would."""
    args = [arg for name, value in params.items() for arg in ("--param", f"{name}={value}")]
    result = run_cli("cypher", query, *args, "--format", "json", env=env, check=True)
    return json.loads(result.stdout)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Non-empty stderr lines: everything the user sees (JVM chatter goes to the server log)."""
    return [line for line in result.stderr.splitlines() if line.strip()]
