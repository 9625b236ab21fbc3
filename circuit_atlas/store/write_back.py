"""Analysis results written back next to the graphs they describe.

    (:Graph {…, replacement_score, completeness_score, pruned_replacement_score, …})
    (:Node {…, score_influence, score_cumulative_share, kept_by_pruning})
    (:Subgraph {subgraph_id, graph_id, name, replacement_score, completeness_score, …})
        -[:SUBGRAPH_OF]->(:Graph)
    (:Node)-[:PINNED_IN]->(:Subgraph)                       # one subgraph per (graph, name)
    (:Supernode {supernode_id, subgraph_id, graph_id, label, index})-[:SUPERNODE_OF]->(:Subgraph)
    (:Node)-[:IN_SUPERNODE]->(:Supernode)                   # Neuronpedia's groups of pinned nodes
    (:Graph)-[:DERIVED_FROM {operation, …}]->(:Graph)     # e.g. a pruned graph → its parent
    (:ROI {roi_id, run_id, method, params_json, index, size, graph_ids, …})-[:ROI_OF]->(:Graph)
    (:Node)-[:IN_ROI]->(:ROI)  or  (:Feature)-[:IN_ROI]->(:ROI)   # one graph / across prompts
    (:ROI)-[:AS_NODE]->(:Node)                             # its node in the quotient graph
    (:MotifStat {stat_id, graph_id, motif, null_model, observed, z, …})-[:STAT_OF]->(:Graph)

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

# Per-row writes find their nodes by element id, read once per graph with NODE_IDS, rather than
# by (graph_id, node_key): Neo4j's planner, seeing few rows, sometimes plans the key lookup as a
# scan of the whole graph filtered per row — quadratic; a 20k-row batch ran for 10 minutes
# (docs/neo4j.md). An element-id lookup has one plan on both servers.
NODE_IDS = "MATCH (n:Node {graph_id: $gid}) RETURN n.node_key AS key, elementId(n) AS id"


def node_ids(run: Run, graph_id: str) -> dict[str, str]:
    """``node_key → elementId`` of one graph's nodes (valid while the graph is not deleted)."""
    return {row["key"]: row["id"] for row in run(NODE_IDS, {"gid": graph_id})}


SET_GRAPH_PROPERTIES = "MATCH (g:Graph {graph_id: $gid}) SET g += $props RETURN count(g) AS n"
SET_NODE_PROPERTIES = (
    "UNWIND $rows AS row MATCH (n:Node) WHERE elementId(n) = row.id SET n += row.props"
)
MERGE_SUBGRAPH = (
    "MATCH (g:Graph {graph_id: $gid}) "
    "MERGE (s:Subgraph {subgraph_id: $sid}) SET s += $props "
    "MERGE (s)-[:SUBGRAPH_OF]->(g)"
)
CLEAR_MEMBERS = "MATCH (:Node)-[r:PINNED_IN]->(:Subgraph {subgraph_id: $sid}) DELETE r"
ADD_MEMBERS = (
    "MATCH (s:Subgraph {subgraph_id: $sid}) "
    "UNWIND $ids AS id "
    "MATCH (n:Node) WHERE elementId(n) = id "
    "MERGE (n)-[:PINNED_IN]->(s)"
)
DELETE_SUPERNODES = "MATCH (p:Supernode {subgraph_id: $sid}) DETACH DELETE p"
CREATE_SUPERNODES = (
    "MATCH (s:Subgraph {subgraph_id: $sid}) "
    "UNWIND $rows AS row "
    "CREATE (p:Supernode) SET p = row "
    "CREATE (p)-[:SUPERNODE_OF]->(s)"
)
LINK_SUPERNODE_MEMBERS = (
    "UNWIND $rows AS row "
    "MATCH (p:Supernode {supernode_id: row.supernode_id}) "
    "MATCH (n:Node) WHERE elementId(n) = row.id "
    "CREATE (n)-[:IN_SUPERNODE]->(p)"
)
DELETE_SUPERNODES_OF_GRAPH = "MATCH (p:Supernode {graph_id: $gid}) DETACH DELETE p"
DELETE_SUBGRAPHS = "MATCH (s:Subgraph {graph_id: $gid}) DETACH DELETE s"
LINK_DERIVED = (
    "MATCH (child:Graph {graph_id: $child}), (parent:Graph {graph_id: $parent}) "
    "MERGE (child)-[r:DERIVED_FROM]->(parent) SET r = $props RETURN count(r) AS n"
)


def set_node_properties(run: Run, node_rows: list[dict[str, Any]], ids: dict[Any, str]) -> int:
    """Set ``{"node_key", "props"}`` rows on the nodes ``ids`` (from ``node_ids``) names;
    rows whose key is not stored are skipped. Returns the number of rows written."""
    rows = [
        {"id": ids[row["node_key"]], "props": row["props"]}
        for row in node_rows
        if row["node_key"] in ids
    ]
    if rows:
        run(SET_NODE_PROPERTIES, {"rows": rows})
    return len(rows)


def write_scores(
    run: Run,
    graph_id: str,
    graph_props: dict[str, Any],
    node_rows: list[dict[str, Any]],
    subgraphs: list[dict[str, Any]],
) -> None:
    """Write one graph's scores inside the caller's transaction.

    ``node_rows``: ``{"node_key", "props"}``; ``subgraphs``: ``{"subgraph_id", "props",
    "members", "supernodes"}`` with ``members`` the pinned node keys and ``supernodes`` (optional)
    ``{"label", "members"}`` groups of them. A subgraph written again is replaced whole.
    """
    run(SET_GRAPH_PROPERTIES, {"gid": graph_id, "props": graph_props})
    ids = node_ids(run, graph_id) if node_rows or subgraphs else {}
    if node_rows:
        set_node_properties(run, node_rows, ids)
    for sub in subgraphs:
        sid = sub["subgraph_id"]
        run(
            MERGE_SUBGRAPH,
            {"gid": graph_id, "sid": sid, "props": {**sub["props"], "graph_id": graph_id}},
        )
        run(CLEAR_MEMBERS, {"sid": sid})
        if sub["members"]:
            members = [ids[key] for key in sub["members"] if key in ids]
            run(ADD_MEMBERS, {"sid": sid, "ids": members})
        _write_supernodes(run, graph_id, sid, sub.get("supernodes") or [], ids)


def _write_supernodes(
    run: Run, graph_id: str, sid: str, supernodes: list[dict[str, Any]], ids: dict[str, str]
) -> None:
    run(DELETE_SUPERNODES, {"sid": sid})
    if not supernodes:
        return
    rows = [
        {
            "supernode_id": f"{sid}/supernode-{index}",
            "subgraph_id": sid,
            "graph_id": graph_id,
            "label": group["label"],
            "index": index,
            "size": len(group["members"]),
        }
        for index, group in enumerate(supernodes)
    ]
    run(CREATE_SUPERNODES, {"sid": sid, "rows": rows})
    links = [
        {"supernode_id": row["supernode_id"], "id": ids[key]}
        for row, group in zip(rows, supernodes)
        for key in group["members"]
        if key in ids
    ]
    if links:
        run(LINK_SUPERNODE_MEMBERS, {"rows": links})


DELETE_MOTIF_STATS = "MATCH (m:MotifStat {graph_id: $gid}) DETACH DELETE m"
CREATE_MOTIF_STATS = (
    "MATCH (g:Graph {graph_id: $gid}) "
    "UNWIND $rows AS row CREATE (m:MotifStat) SET m = row CREATE (m)-[:STAT_OF]->(g)"
)


def write_motif_stats(run: Run, graph_id: str, rows: list[dict[str, Any]]) -> None:
    """Replace a graph's motif census inside the caller's transaction."""
    run(DELETE_MOTIF_STATS, {"gid": graph_id})
    if rows:
        run(CREATE_MOTIF_STATS, {"gid": graph_id, "rows": rows})


DELETE_ROI_RUN = "MATCH (r:ROI {run_id: $run}) DETACH DELETE r"
DELETE_ROIS_OF_GRAPH = "MATCH (r:ROI) WHERE $gid IN r.graph_ids DETACH DELETE r"
CREATE_ROIS = "UNWIND $rows AS row CREATE (r:ROI) SET r = row"
LINK_ROI_GRAPHS = (
    "MATCH (r:ROI {run_id: $run}) UNWIND r.graph_ids AS gid "
    "MATCH (g:Graph {graph_id: gid}) CREATE (r)-[:ROI_OF]->(g)"
)
LINK_NODE_MEMBERS = (
    "UNWIND $rows AS row MATCH (r:ROI {roi_id: row.roi_id}) "
    "MATCH (n:Node) WHERE elementId(n) = row.id CREATE (n)-[:IN_ROI]->(r)"
)
LINK_FEATURE_MEMBERS = (
    "UNWIND $rows AS row MATCH (r:ROI {roi_id: row.roi_id}) "
    "MATCH (f:Feature {model: $model, transcoder_set: $transcoder_set, layer: row.layer, "
    "feature: row.feature}) CREATE (f)-[:IN_ROI]->(r)"
)
LINK_QUOTIENT_NODES = (
    "MATCH (r:ROI {run_id: $run}) "
    "MATCH (n:Node {graph_id: $qgid, node_key: r.quotient_key}) CREATE (r)-[:AS_NODE]->(n)"
)


def write_rois(
    run: Run,
    run_id: str,
    roi_rows: list[dict[str, Any]],
    members: list[dict[str, Any]],
    member_kind: str,
    scope: dict[str, Any],
) -> None:
    """Replace one ROI run (same run id → same ROIs, never duplicates) inside a transaction.

    ``member_kind`` is ``"node"`` (rows ``{roi_id, key}``, ``scope["graph_id"]``) or
    ``"feature"`` (rows ``{roi_id, layer, feature}``, ``scope["model"]`` and
    ``scope["transcoder_set"]``); ``scope["quotient_graph_id"]`` links ROIs to quotient nodes.
    """
    run(DELETE_ROI_RUN, {"run": run_id})
    run(CREATE_ROIS, {"rows": roi_rows})
    run(LINK_ROI_GRAPHS, {"run": run_id})
    if member_kind == "node":
        ids = node_ids(run, scope["graph_id"])
        rows = [{**row, "id": ids[row["key"]]} for row in members if row["key"] in ids]
        run(LINK_NODE_MEMBERS, {"rows": rows})
    else:
        run(
            LINK_FEATURE_MEMBERS,
            {"rows": members, "model": scope["model"], "transcoder_set": scope["transcoder_set"]},
        )
    if scope.get("quotient_graph_id"):
        run(LINK_QUOTIENT_NODES, {"run": run_id, "qgid": scope["quotient_graph_id"]})
