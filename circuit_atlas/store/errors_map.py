"""Translate driver exceptions into one-line ``CircuitAtlasError`` messages.

The driver's messages are long and multi-line; users need to know *which* server failed and
*what* to do. Passwords never appear: only the URI and user are named.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from neo4j import exceptions as neo

from circuit_atlas.errors import (
    ConnectionFailed,
    CypherError,
    DuplicateKey,
    QueryTimeout,
    StoreError,
    WriteConflict,
)

T = TypeVar("T")


def first_line(message: object) -> str:
    text = str(message or "").strip()
    for marker in ("{message: ", "message: "):
        if marker in text:
            text = text.split(marker, 1)[1].rstrip("}")
            break
    return text.splitlines()[0] if text else "(no message)"


def _is_duplicate_key(exc: neo.Neo4jError) -> bool:
    """A uniqueness-constraint violation: Neo4j's code, or ArcadeDB's message."""
    return "ConstraintValidationFailed" in (exc.code or "") or "Duplicated key" in str(
        exc.message or ""
    )


# How servers word a write that lost to a concurrent one and should be retried: ArcadeDB's
# page-level optimistic concurrency and commit locks, Neo4j's deadlocks and lock timeouts.
_CONFLICT_MARKERS = (
    "concurrent change",
    "please retry",
    "timeout on locking",
    "concurrentmodification",
    "deadlock",
    "lockclient",
    "locktimeout",
)
# Out-of-memory is reported as transient by Neo4j, but running the same transaction again
# only fails again: never retried (the driver would do so silently for 30 s).
_MEMORY_MARKERS = ("memorypool", "outofmemory", "memory limit", "heap budget exceeded")


def _is_memory_error(exc: neo.Neo4jError) -> bool:
    text = f"{exc.code or ''} {exc.message or ''}".lower()
    return any(marker in text for marker in _MEMORY_MARKERS)


def _is_conflict(exc: neo.Neo4jError) -> bool:
    text = f"{exc.code or ''} {exc.message or ''}".lower()
    return any(marker in text for marker in _CONFLICT_MARKERS) or (
        isinstance(exc, neo.TransientError) and not _is_memory_error(exc)
    )


class NotRetried(Exception):
    """Carries a driver error out of a managed transaction so the driver does not retry it."""

    def __init__(self, error: neo.Neo4jError) -> None:
        super().__init__(str(error))
        self.error = error


def unless_out_of_memory(work: Callable[[Any], T]) -> Callable[[Any], T]:
    """``work`` for the driver's managed transactions (``execute_read``), which retry every
    transient error for ``max_transaction_retry_time``: an out-of-memory error is transient by
    its code but fails the same way each time, so it leaves at once, wrapped in ``NotRetried``
    (unwrap it with ``raise wrapped.error`` inside ``translated``)."""

    def guarded(tx: Any) -> T:
        try:
            return work(tx)
        except neo.Neo4jError as exc:
            if _is_memory_error(exc):
                raise NotRetried(exc) from exc
            raise

    return guarded


@contextlib.contextmanager
def translated(uri: str, user: str | None) -> Generator[None, None, None]:
    """Re-raise driver errors as store errors naming the server (never the password)."""
    try:
        yield
    except neo.AuthError:
        raise ConnectionFailed(
            f"the graph database at {uri} refused the credentials for user {user!r}"
        ) from None
    except (neo.ServiceUnavailable, neo.SessionExpired, OSError) as exc:
        raise ConnectionFailed(
            f"cannot reach the graph database at {uri} ({first_line(exc)}); is it running?"
        ) from None
    except neo.CypherSyntaxError as exc:
        raise CypherError(f"Cypher syntax error: {first_line(exc.message)}") from None
    except neo.Neo4jError as exc:
        if _is_duplicate_key(exc):
            raise DuplicateKey(f"duplicate key: {first_line(exc.message)}") from None
        if _is_memory_error(exc):
            raise StoreError(
                f"the graph database ran out of memory for this transaction "
                f"({first_line(exc.message)}); give the server more memory, or ask for less at once"
            ) from None
        if _is_conflict(exc):
            raise WriteConflict(
                f"a concurrent write conflicted with this one ({first_line(exc.message)})"
            ) from None
        if not isinstance(exc, neo.ClientError):
            raise StoreError(f"graph database error: {first_line(exc.message)}") from None
        code = exc.code or ""
        if "AccessMode" in code or "Forbidden" in code:
            raise CypherError(
                f"write refused in read-only mode: {first_line(exc.message)}"
            ) from None
        if "TransactionTimedOut" in code:  # Neo4j enforces the transaction timeout itself
            raise QueryTimeout(
                f"the server stopped the query at its time limit ({first_line(exc.message)}); "
                "raise the limit with --timeout SECONDS (timeout_s= in Python)"
            ) from None
        if "DatabaseNotFound" in code:
            raise StoreError(
                f"the graph database at {uri} has no such database ({first_line(exc.message)}); "
                "Neo4j Community has only 'neo4j': pass --database neo4j or leave it unset"
            ) from None
        if "ParameterMissing" in code:
            raise CypherError(f"missing query parameter: {first_line(exc.message)}") from None
        raise CypherError(f"query failed: {first_line(exc.message)}") from None
    except neo.DriverError as exc:
        raise StoreError(f"graph database driver error: {first_line(exc)}") from None
