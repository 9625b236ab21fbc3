"""Ending a process that hosts the embedded JVM without JPype's shutdown.

JPype shuts the JVM down from an ``atexit`` hook. After everything has succeeded and every store
and the local server are closed, that shutdown still occasionally dies with SIGSEGV (CI saw
``217 passed`` followed by exit 139). Nothing is left to lose at that point, so the CLI and the
test session close what they own, flush their output, and end the process directly.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from circuit_atlas.native_threads import jvm_started


def exit_process(code: int) -> NoReturn:
    """Exit with ``code``; when the JVM runs, close stores and the server first, then skip
    interpreter teardown (see the module docstring)."""
    if not jvm_started():
        sys.exit(code)
    from circuit_atlas.local_server import LocalServer
    from circuit_atlas.store.circuit_store import _close_open_stores

    _close_open_stores()
    if LocalServer._active is not None:
        LocalServer._active.stop()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
