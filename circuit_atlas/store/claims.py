"""Who may write or delete a graph id right now: claims, so concurrent writers never destroy
each other's data.

A writer first *claims* the id, in a transaction of its own: it creates the ``:Graph`` node with
status ``'loading'`` and a random ``writer_token``. The uniqueness constraint on
``Graph.graph_id`` lets exactly one of several concurrent claimers commit; the others get a
duplicate-key error and read who holds the id. Everything the winner does afterwards — writing
nodes and edges, flipping the status to ``'ready'``, cleaning up after a failure — is
conditioned on its token, so a loser never touches the winner's graph.

Deletes claim too: a ready graph is flipped to ``'deleting'`` (with the deleter's token) before
its first node goes, so readers, which only see ``'ready'`` graphs, see it whole or not at all,
and an interrupted delete is finished later (:meth:`CircuitStore.remove_interrupted_loads`).

Taking an existing ``:Graph`` over (replace, delete, or a claim whose writer died) is a
conditional update that first bumps ``claim_version``: on Neo4j that write takes the node's lock
before the condition is read (the documented cure for lost updates), on ArcadeDB two such
transactions conflict and only one commits. Either way exactly one taker wins.

When is a writer dead? On its own machine, when its process is gone. From another machine that
cannot be seen, so a claim also carries ``heartbeat_at``, the *server's* clock (``timestamp()``,
so hosts' clocks never disagree) at the claim and at every batch the writer commits; a claim
silent for ``SILENT_CLAIM_S`` is judged dead from anywhere, and the next writer, ``rm`` or store
that opens cleans it up. A live writer commits a batch every few seconds, and one that was
judged dead anyway finds its claim gone at its next batch and stops, keeping nothing.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

from circuit_atlas.local_server import _pid_alive
from circuit_atlas.store import schema

# A claim silent this long (no batch committed, by the server's clock) is judged dead from any
# host: far above a batch (seconds) and the server's transaction timeout (minutes).
SILENT_CLAIM_S = 3600.0

CLAIM = (
    "CREATE (g:Graph {graph_id: $gid, status: $status, writer_token: $token, writer: $writer, "
    "writer_space: $space, claimed_at: $now, heartbeat_at: timestamp(), claim_version: 0})"
)
# Take an existing :Graph over from whoever holds it now, if it is still in the state we saw.
TAKE_OVER = (
    "MATCH (g:Graph {graph_id: $gid}) "
    "SET g.claim_version = coalesce(g.claim_version, 0) + 1 "
    "WITH g WHERE g.status = $seen_status AND coalesce(g.writer_token, '') = $seen_token "
    "AND coalesce(g.content_hash, '') = $seen_hash "
    "SET g.status = $status, g.writer_token = $token, g.writer = $writer, "
    "g.writer_space = $space, g.claimed_at = $now, g.heartbeat_at = timestamp() "
    "RETURN count(g) AS n"
)
# After a take-over: the :Graph keeps only its identity and the claim (old metadata goes).
RESET_CLAIMED = (
    "MATCH (g:Graph {graph_id: $gid, writer_token: $token}) "
    "SET g = {graph_id: $gid, status: $status, writer_token: $token, writer: $writer, "
    "writer_space: $space, claimed_at: $now, heartbeat_at: timestamp(), "
    "claim_version: coalesce(g.claim_version, 0)} RETURN count(g) AS n"
)
SET_CLAIMED_PROPERTIES = (
    "MATCH (g:Graph {graph_id: $gid, writer_token: $token}) SET g += $props RETURN count(g) AS n"
)
MARK_READY = (
    "MATCH (g:Graph {graph_id: $gid, writer_token: $token}) "
    "SET g.status = $ready RETURN count(g) AS n"
)
# A batch of graphs at once (CircuitStore.write_graphs): the count says whether every claim held.
MARK_ALL_READY = (
    "UNWIND $claims AS c MATCH (g:Graph {graph_id: c.gid, writer_token: c.token}) "
    "SET g.status = $ready RETURN count(g) AS n"
)
# Whether the claim is still ours, and a sign of life: the first statement of every transaction
# that writes part of a graph in batches (a claim cleared by `rm --force`, or judged dead, stops
# the writer at its next batch).
HOLDS_CLAIM = (
    "MATCH (g:Graph {graph_id: $gid, writer_token: $token}) SET g.heartbeat_at = timestamp() "
    "RETURN count(g) AS n"
)
# A :Graph record as Holder.of reads it: its properties, and how long its claim has been silent.
READ_RECORD = "RETURN properties(g) AS g, (timestamp() - g.heartbeat_at) / 1000.0 AS silent_s"
DELETE_CLAIMED_GRAPH = (
    "MATCH (g:Graph {graph_id: $gid, writer_token: $token}) DETACH DELETE g RETURN count(*) AS n"
)


def new_token() -> str:
    return secrets.token_hex(16)


def this_writer() -> str:
    """``host:pid`` of this process: how a claim says who holds it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _read_text(path: str) -> str:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return ""


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def this_space() -> str:
    """Which process-id space this process lives in: the kernel's boot id and the pid namespace.
    Two containers (or machines) may share a host name; a pid is only comparable within one
    space, so a claim from another space is judged by its silence, never by its pid."""
    return f"{_read_text('/proc/sys/kernel/random/boot_id')}/{_link('/proc/self/ns/pid')}"


def record_with_silence(row: dict[str, Any]) -> dict[str, Any]:
    """A row of ``READ_RECORD`` as one record for ``Holder.of``."""
    return {**row["g"], "silent_s": row.get("silent_s")}


@dataclass(frozen=True)
class Holder:
    """What a ``:Graph`` record says about who holds the id, as last read."""

    status: str
    token: str
    content_hash: str
    writer: str
    claimed_at: float | None
    space: str = ""
    silent_s: float | None = None

    @classmethod
    def of(cls, record: dict[str, Any]) -> Holder:
        silent = record.get("silent_s")
        return cls(
            status=str(record.get("status") or schema.READY),
            token=str(record.get("writer_token") or ""),
            content_hash=str(record.get("content_hash") or ""),
            writer=str(record.get("writer") or ""),
            claimed_at=record.get("claimed_at"),
            space=str(record.get("writer_space") or ""),
            silent_s=float(silent) if isinstance(silent, (int, float)) else None,
        )

    def is_gone(self, silent_after_s: float = SILENT_CLAIM_S) -> bool:
        """Whether the process holding a loading/deleting claim has certainly died: it ran in
        this host's process space and its process id no longer exists, or, from anywhere, its
        claim has been silent (no batch committed) for ``silent_after_s``. A claim stored before
        claims carried a heartbeat, from another host, is left to ``rm --force``."""
        if self.silent_s is not None and self.silent_s > silent_after_s:
            return True
        host, _, pid = self.writer.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        if self.space and self.space != this_space():
            return False  # same host name, another machine or container: only silence tells
        return int(pid) != os.getpid() and not _pid_alive(int(pid))

    def describe(self) -> str:
        since = (
            time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(self.claimed_at))
            if isinstance(self.claimed_at, (int, float))
            else ""
        )
        who = f"process {self.writer}" if self.writer else "another process"
        return f"{who}{since}"


def take_over_params(gid: str, seen: Holder, status: str, token: str) -> dict[str, Any]:
    return {
        "gid": gid,
        "seen_status": seen.status,
        "seen_token": seen.token,
        "seen_hash": seen.content_hash,
        "status": status,
        "token": token,
        "writer": this_writer(),
        "space": this_space(),
        "now": time.time(),
    }
