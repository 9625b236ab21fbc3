"""Rows come back exactly as ``Record.data()`` gives them, by the fast path or the driver's."""

from __future__ import annotations

import pytest

from circuit_atlas.store import CircuitStore
from circuit_atlas.store.records import record_rows

pytestmark = pytest.mark.backends("arcadedb", "neo4j")

ROWS = """
CREATE (a:Probe {name: 'a', values: [1, 2]})-[r:PROBE_LINK {w: 0.5}]->(b:Probe {name: 'b'})
WITH a, r, b
UNWIND range(1, 3) AS i
RETURN i, 'text' + toString(i) AS text, i * 0.5 AS real, i > 1 AS flag, null AS missing,
       [i, 'x', [i * 1.5, null], {inner: [true]}] AS nested, {count: i, names: ['p']} AS map,
       CASE WHEN i = 2 THEN a END AS node, CASE WHEN i = 3 THEN r END AS link,
       CASE WHEN i = 3 THEN [a, {node: b}] END AS nodes_inside
"""


def test_rows_are_what_record_data_gives(fresh_store: CircuitStore):
    """Plain rows (1) and rows holding a node or relationship (2, 3), nested included, equal
    ``record.data()`` value for value."""
    with fresh_store.driver.session(database=fresh_store.database) as session:
        tx = session.begin_transaction()
        try:
            records = list(tx.run(ROWS))
        finally:
            tx.rollback()
    expected = [record.data() for record in records]
    assert record_rows(records) == expected
    assert expected[0]["nested"] == [1, "x", [1.5, None], {"inner": [True]}]
    assert expected[1]["node"] == {"name": "a", "values": [1, 2]}
    assert expected[2]["nodes_inside"] == [{"name": "a", "values": [1, 2]}, {"node": {"name": "b"}}]
    assert record_rows([]) == []
