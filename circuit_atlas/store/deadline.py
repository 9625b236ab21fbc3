"""Give up waiting for a query after a deadline, on any Bolt server.

Why not the Bolt transaction timeout alone: Neo4j honours it, but ArcadeDB's Bolt server (the
zero-setup default) ignores it — ``UNWIND range(1, 20000000) …`` with ``timeout=1`` ran 17 s.
So the query runs on a worker thread with its own session, and the caller waits at most
``timeout_s`` for it. The driver cannot cancel a running query, so on a server that ignores the
transaction timeout the abandoned query keeps a pooled connection and server CPU until the server
finishes it; its rows are then dropped and its transaction rolled back. The store stays usable
meanwhile (the next query takes another connection), and closing the store closes that
connection too.

A write must never commit after its caller was told it timed out: the worker *claims* the
result before committing, and the caller gives up only if nothing has been claimed yet —
otherwise it waits for the commit to finish and returns its outcome.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import TypeVar

T = TypeVar("T")
POLL_S = 0.2


class Handoff:
    """Who owns a query's outcome: the waiting caller, or the worker about to commit it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._claimed = False

    def claim(self) -> bool:
        """Worker side, just before an irreversible step: False once the caller has given up."""
        with self._lock:
            if not self._abandoned:
                self._claimed = True
            return self._claimed

    def abandon(self) -> bool:
        """Caller side, at the deadline: False if the worker already claimed the outcome."""
        with self._lock:
            if not self._claimed:
                self._abandoned = True
            return self._abandoned


def call_with_deadline(
    work: Callable[[Callable[[], bool]], T],
    timeout_s: float | None,
    timed_out: Callable[[], Exception],
) -> T:
    """``work(claim)`` on a daemon thread; its result, or ``timed_out()`` raised after timeout_s.

    ``claim`` is :meth:`Handoff.claim`; ``work`` calls it before committing and rolls back when
    it returns False. A daemon thread (not a ``ThreadPoolExecutor``, whose workers are joined at
    interpreter exit) so that an abandoned query never keeps the process alive. The caller waits
    in slices of ``POLL_S``: with the JVM's threads in the process, Ctrl-C may be delivered to
    another thread and would otherwise only be noticed when a long wait ends. ``timeout_s=None``
    waits for ever.
    """
    handoff = Handoff()
    future: Future[T] = Future()

    def target() -> None:
        try:
            result = work(handoff.claim)
        except BaseException as exc:  # handed to the caller, or dropped once it has given up
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=target, name="circuit-atlas-query", daemon=True).start()
    deadline = math.inf if timeout_s is None else time.monotonic() + timeout_s
    try:
        while not future.done() and (left := deadline - time.monotonic()) > 0:
            wait([future], timeout=min(left, POLL_S))
    except BaseException:  # Ctrl-C while waiting: the caller is gone, so no commit may follow
        handoff.abandon()
        raise
    if not future.done() and handoff.abandon():
        raise timed_out()
    return future.result()  # done, or a write that claimed its commit: report how it ended
