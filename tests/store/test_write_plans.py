"""The store's per-row write statements have one plan on Neo4j: seeks, never scans.

Why: a batch of 20k edges found its nodes by ``(graph_id, node_key)``, and Neo4j sometimes
planned that lookup as a scan of the graph's nodes filtered per row — 600 s for a batch that
takes 1.5 s (measured on Neo4j 5.26). The statements now find nodes by element id; this pins
that every ``UNWIND`` statement of the writer and the write-back plans without a scan.
"""

from __future__ import annotations

import pytest

from circuit_atlas.store import CircuitStore, write_back, writer

pytestmark = pytest.mark.backends("neo4j")

SCANS = ("AllNodesScan", "NodeByLabelScan", "NodeIndexScan", "DirectedRelationshipTypeScan")


def unwind_statements() -> dict[str, str]:
    found = {}
    for module in (writer, write_back):
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and "UNWIND $" in value:
                found[f"{module.__name__.rsplit('.', 1)[-1]}.{name}"] = value
    return found


def operators(plan: dict) -> list[tuple[str, str]]:
    ops = [(plan["operatorType"].split("@")[0], str(plan.get("args", {}).get("Details", "")))]
    for child in plan.get("children", []):
        ops += operators(child)
    return ops


def test_every_unwind_write_seeks_its_nodes(fresh_store: CircuitStore):
    statements = unwind_statements()
    assert {"writer.CREATE_EDGES", "writer.LINK_FEATURES", "write_back.SET_NODE_PROPERTIES"} <= set(
        statements
    )
    with fresh_store.driver.session(database=fresh_store.database) as session:
        for name, cypher in statements.items():
            explain = "EXPLAIN " + cypher
            plan = session.run(explain).consume().plan  # ty: ignore[invalid-argument-type]
            assert plan is not None
            ops = operators(plan)
            scans = [op for op in ops if op[0] in SCANS]
            filtered_keys = [op for op in ops if op[0] == "Filter" and "node_key" in op[1]]
            assert not scans and not filtered_keys, (name, ops)
            if "WHERE elementId(" in cypher:
                assert any(op[0] == "NodeByElementIdSeek" for op in ops), (name, ops)
