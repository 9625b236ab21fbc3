"""Driver errors the store translates by their text (``store/errors_map.py``)."""

from __future__ import annotations

import neo4j.exceptions as neo
import pytest

from circuit_atlas.errors import StoreError, WriteConflict
from circuit_atlas.store.errors_map import NotRetried, translated, unless_out_of_memory


def raised(code: str, message: str) -> Exception:
    with pytest.raises(StoreError) as caught, translated("bolt://127.0.0.1:1", "root"):
        raise neo.Neo4jError._hydrate_neo4j(code=code, message=message)
    return caught.value


def test_arcadedb_query_heap_budget_is_memory_not_a_write_conflict():
    """ArcadeDB reports its query heap budget as a transient error; it used to read as "a
    concurrent write conflicted with this one" (feature_jaccard on a 1M-edge store)."""
    error = raised(
        "Neo.TransientError.General.DatabaseUnavailable",
        "Query heap budget exceeded: the in-heap GROUP BY needs 278.60KB more",
    )
    assert not isinstance(error, WriteConflict)
    assert "ran out of memory" in str(error) and "ask for less" in str(error)


def test_neo4j_transaction_memory_limit_is_memory_not_a_write_conflict():
    """Neo4j's wording when a transaction passes db.memory.transaction.max (transient, so the
    driver would retry it; it fails the same way every time)."""
    error = raised(
        "Neo.TransientError.General.MemoryPoolOutOfMemoryError",
        "The allocation of an extra 2.0 MiB would use more than the limit 2.0 GiB. Currently "
        "using 2.0 GiB. db.memory.transaction.max threshold reached",
    )
    assert not isinstance(error, WriteConflict)
    assert "ran out of memory" in str(error)


def test_a_real_transient_conflict_still_reads_as_one():
    error = raised("Neo.TransientError.Transaction.DeadlockDetected", "deadlock detected")
    assert isinstance(error, WriteConflict)


def test_an_out_of_memory_error_leaves_a_managed_read_at_once():
    """The driver retries transient errors in ``execute_read`` for seconds; out-of-memory is
    transient by its code but fails the same way every time, so it leaves wrapped in an
    exception the driver does not retry, and other transient errors are left to the driver."""
    memory = neo.Neo4jError._hydrate_neo4j(
        code="Neo.TransientError.General.MemoryPoolOutOfMemoryError", message="limit reached"
    )
    deadlock = neo.Neo4jError._hydrate_neo4j(
        code="Neo.TransientError.Transaction.DeadlockDetected", message="deadlock"
    )
    assert memory.is_retryable() and deadlock.is_retryable()  # what the driver would do

    def failing(error: Exception):
        def work(tx: object) -> None:
            raise error

        return unless_out_of_memory(work)

    with pytest.raises(NotRetried) as caught:
        failing(memory)(None)
    assert caught.value.error is memory and not isinstance(caught.value, neo.Neo4jError)
    with pytest.raises(neo.TransientError):
        failing(deadlock)(None)
    assert unless_out_of_memory(lambda tx: [tx])("tx") == ["tx"]
