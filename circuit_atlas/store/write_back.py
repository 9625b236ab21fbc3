"""Analysis results written back next to the graphs they describe.

    (:Graph {…, replacement_score, completeness_score, pruned_replacement_score, …})
    (:Node {…, score_influence, score_cumulative_share, kept_by_pruning})
    (:Subgraph {subgraph_id, graph_id, name, replacement_score, completeness_score, …})
        -[:SUBGRAPH_OF]->(:Graph)
    (:Node)-[:PINNED_IN]->(:Subgraph)
    (:Graph)-[:DERIVED_FROM {operation, …}]->(:Graph)     # e.g. a pruned graph → its parent

Every statement is keyed (``MERGE`` on ids, ``SET`` of whole property maps), so writing the same
result twice changes nothing. Values reach Cypher only as parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SUBGRAPH = "Subgraph"
SUBGRAPH_OF = "SUBGRAPH_OF"
PINNED_IN = "PINNED_IN"
DERIVED_FROM = "DERIVED_FROM"

Run = Callable[[str, dict[str, Any]], list[dict[str, Any]]]

SET_GRAPH_PROPERTIES = "MATCH (g:Graph {graph_id: $gid}) SET g += $props RETURN count(g) AS n"
SET_NODE_PROPERTIES = (
    "UNWIND $rows AS row MATCH (n:Node {graph_id: $gid, node_key: row.node_key}) SET n += row.props"
)
MERGE_SUBGRAPH = (
    "MATCH (g:Graph {graph_id: $gid}) "
    "MERGE (s:Subgraph {subgraph_id: $sid}) SET s += $props "
    "MERGE (s)-[:SUBGRAPH_OF]->(g)"
)
CLEAR_MEMBERS = "MATCH (:Node)-[r:PINNED_IN]->(:Subgraph {subgraph_id: $sid}) DELETE r"
ADD_MEMBERS = (
    "MATCH (s:Subgraph {subgraph_id: $sid}) "
    "UNWIND $keys AS key "
    "MATCH (n:Node {graph_id: $gid, node_key: key}) "
    "MERGE (n)-[:PINNED_IN]->(s)"
)
DELETE_SUBGRAPHS = "MATCH (s:Subgraph {graph_id: $gid}) DETACH DELETE s"
LINK_DERIVED = (
    "MATCH (child:Graph {graph_id: $child}), (parent:Graph {graph_id: $parent}) "
    "MERGE (child)-[r:DERIVED_FROM]->(parent) SET r = $props RETURN count(r) AS n"
)


def write_scores(
    run: Run,
    graph_id: str,
    graph_props: dict[str, Any],
    node_rows: list[dict[str, Any]],
    subgraphs: list[dict[str, Any]],
) -> None:
    """Write one graph's scores inside the caller's transaction.

    ``node_rows``: ``{"node_key", "props"}``; ``subgraphs``: ``{"subgraph_id", "props",
    "members"}`` with ``members`` the pinned node keys.
    """
    run(SET_GRAPH_PROPERTIES, {"gid": graph_id, "props": graph_props})
    if node_rows:
        run(SET_NODE_PROPERTIES, {"gid": graph_id, "rows": node_rows})
    for sub in subgraphs:
        sid = sub["subgraph_id"]
        run(
            MERGE_SUBGRAPH,
            {"gid": graph_id, "sid": sid, "props": {**sub["props"], "graph_id": graph_id}},
        )
        run(CLEAR_MEMBERS, {"sid": sid})
        if sub["members"]:
            run(ADD_MEMBERS, {"gid": graph_id, "sid": sid, "keys": list(sub["members"])})
