"""Stop, on the server, a query whose caller stopped waiting for it.

Why: when ``CircuitStore.query`` gives up at its deadline (``deadline.py``) the driver cannot
cancel the query, and ArcadeDB would run it to the end — a runaway path enumeration can hold a
core for minutes. Both ArcadeDB (26.x) and Neo4j 5 list running work with ``SHOW TRANSACTIONS``
and stop it with ``TERMINATE TRANSACTIONS``; measured on ArcadeDB, a 16 s query stopped 0.1 s
after the terminate. This is best effort: a server without these commands, or a user without
the privilege, leaves the query running until it ends.

The query is recognised by its text and user, because giving every query a unique tag (a
comment) would defeat the server's plan cache (8 ms more per strongest_paths call, measured).
So an identical query of the same user that runs at the same moment is stopped too; it fails
with "terminated".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from circuit_atlas.store.deadline import call_with_deadline

Run = Callable[[str, dict[str, Any]], list[dict[str, Any]]]

SHOW = "SHOW TRANSACTIONS"
TERMINATE = "TERMINATE TRANSACTIONS $ids"
# ArcadeDB shows at most 1024 characters of a query; compare no more than that.
SHOWN_CHARS = 1000
WAIT_S = 5.0  # how long a timed-out query waits for the server to stop it


def matching_transactions(rows: Iterable[dict[str, Any]], text: str, user: str | None) -> list[str]:
    """Ids of the listed transactions that run ``text`` for ``user`` (any user when None)."""
    ids = []
    for row in rows:
        shown = str(row.get("currentQuery") or "")
        if not shown or shown[:SHOWN_CHARS] != text[:SHOWN_CHARS]:
            continue
        if user is not None and row.get("username") not in (None, user):
            continue
        if row.get("transactionId"):
            ids.append(str(row["transactionId"]))
    return ids


def terminate_matching(run: Run, text: str, user: str | None) -> list[str]:
    """Terminate the server transactions running ``text``; returns their ids.

    ``run(cypher, params)`` runs one auto-commit statement and returns its rows (the
    administration commands are refused inside explicit transactions on some servers).
    """
    ids = matching_transactions(run(SHOW, {}), text, user)
    if ids:
        run(TERMINATE, {"ids": ids})
    return ids


def stop_on_server(run: Run, text: str, user: str | None, wait_s: float = WAIT_S) -> bool:
    """:func:`terminate_matching` waiting at most ``wait_s``; True if something was stopped.

    Never raises: on a server without the commands, or for a user without the privilege, the
    abandoned query simply runs to its end.
    """

    def work(_claim: Callable[[], bool]) -> list[str]:
        return terminate_matching(run, text, user)

    try:
        return bool(call_with_deadline(work, wait_s, lambda: TimeoutError(SHOW)))
    except Exception:
        return False
