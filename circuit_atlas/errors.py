"""Errors a user can act on.

Every failure that reaches the CLI is a ``CircuitAtlasError``: the CLI prints its message as one
line and exits non-zero, so each message must name what failed (file, field, graph, server) and,
where there is one, what to do about it.
"""

from __future__ import annotations


class CircuitAtlasError(Exception):
    """Base class of every error whose message is meant for the user."""


class InvalidGraphError(CircuitAtlasError):
    """A graph is internally inconsistent: NaN/inf weights, unknown endpoints, shape mismatch."""


class ImportFormatError(CircuitAtlasError):
    """A file could not be imported; the message names the file and the field."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class StoreError(CircuitAtlasError):
    """The graph database refused or failed an operation."""


class ConnectionFailed(StoreError):
    """The graph database is unreachable or refused the credentials."""


class GraphNotFound(StoreError):
    """No ready graph with the requested id exists in the store."""


class GraphConflict(StoreError):
    """A different graph with the same id already exists."""


class ArtifactUnavailable(StoreError):
    """A graph's exact adjacency artifact is missing, altered or unreadable."""


class CypherError(StoreError):
    """A user's Cypher query was rejected (syntax, write in read-only mode, bad parameter)."""


class QueryTimeout(CypherError):
    """A query ran past its time limit (``--timeout``, ``timeout_s=``): the caller stopped
    waiting, and the server was asked to stop it (``store/abandon.py``)."""


class LocalServerError(CircuitAtlasError):
    """The embedded local graph server could not be started, found or stopped."""


class GraphBusy(StoreError):
    """Another process is writing or deleting this graph id right now (see ``store/claims.py``)."""


class DuplicateKey(CypherError):
    """A write met a uniqueness constraint: another transaction stored the same key first."""


class WriteConflict(StoreError):
    """A write collided with a concurrent one (a lock or optimistic-concurrency conflict); it
    was rolled back and may simply be run again (``CircuitStore`` does, a bounded number of
    times)."""


class ModelLoadError(CircuitAtlasError):
    """The model could not be found, loaded or placed on the requested device."""


class TaskError(CircuitAtlasError):
    """A task file is missing, empty, or lacks what its format needs."""


class DictionaryError(CircuitAtlasError):
    """Transcoder or SAE weights are missing, malformed, or do not fit the model."""
