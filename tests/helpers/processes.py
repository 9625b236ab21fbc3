"""Run ``circuit-atlas`` as separate processes, as a team sharing a store would: at once, or
killed (SIGKILL, no cleanup code runs) at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def start_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "circuit_atlas.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def kill_when(args: list[str], env: dict[str, str], marker: str, after_s: float = 0.3) -> None:
    """Start ``circuit-atlas ARGS`` with progress bars, wait until its stderr shows ``marker``
    (the bar of the step to interrupt), let it work ``after_s`` more, then SIGKILL it."""
    env = dict(env, CIRCUIT_ATLAS_PROGRESS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "circuit_atlas.cli", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    assert process.stderr is not None
    os.set_blocking(process.stderr.fileno(), False)
    seen = b""
    deadline = time.monotonic() + 240
    while marker.encode() not in seen:
        chunk = process.stderr.read()
        seen += chunk or b""
        assert process.poll() is None, f"{args[0]} ended before it was killed: {seen[-500:]!r}"
        assert time.monotonic() < deadline, f"{args[0]} never reached {marker!r}"
        time.sleep(0.02)
    time.sleep(after_s)
    process.send_signal(signal.SIGKILL)
    process.wait()
