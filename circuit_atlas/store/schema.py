"""The graph-database schema, created idempotently (``IF NOT EXISTS``).

    (:Graph {graph_id, status, content_hash, artifact_path, …metadata})
    (:Node {graph_id, node_key, kind, layer, pos, feature, head, …})-[:IN_GRAPH]->(:Graph)
    (:Node)-[:EDGE {weight, channel?, …}]->(:Node)          # within one graph
    (:Node {kind:'feature'})-[:INSTANCE_OF]->(:Feature {model, transcoder_set, layer, feature})

Exact per-graph aggregates (``:GraphSummary``, ``:LayerPair``) are described in
:mod:`.summaries`, analysis results (scores, ``:Subgraph``, ``DERIVED_FROM``) in
:mod:`.write_back`.

``:Feature`` is the cross-graph identity: every prompt's node for transcoder feature
(layer, index) of one model and transcoder set points to the same ``:Feature``, so Cypher can ask
which prompts share a feature. ``Graph.status`` is ``'loading'`` while a write is under way,
``'deleting'`` while a delete is, and ``'ready'`` otherwise; every read of the store filters on
it (``claims.py``).
"""

from __future__ import annotations

GRAPH = "Graph"
NODE = "Node"
FEATURE = "Feature"
EDGE = "EDGE"
IN_GRAPH = "IN_GRAPH"
INSTANCE_OF = "INSTANCE_OF"

READY = "ready"
LOADING = "loading"  # claimed by a writer (store/claims.py); hidden from every read
DELETING = "deleting"  # claimed by a deleter; hidden from every read

# Valid in Neo4j 5 and ArcadeDB's OpenCypher alike (every store test creates them, on both
# servers: tests/store/).
SCHEMA_STATEMENTS = (
    "CREATE CONSTRAINT graph_id_unique IF NOT EXISTS FOR (g:Graph) REQUIRE g.graph_id IS UNIQUE",
    "CREATE CONSTRAINT node_key_unique IF NOT EXISTS "
    "FOR (n:Node) REQUIRE (n.graph_id, n.node_key) IS UNIQUE",
    "CREATE CONSTRAINT feature_identity_unique IF NOT EXISTS "
    "FOR (f:Feature) REQUIRE (f.model, f.transcoder_set, f.layer, f.feature) IS UNIQUE",
    "CREATE CONSTRAINT subgraph_id_unique IF NOT EXISTS "
    "FOR (s:Subgraph) REQUIRE s.subgraph_id IS UNIQUE",
    "CREATE CONSTRAINT supernode_id_unique IF NOT EXISTS "
    "FOR (p:Supernode) REQUIRE p.supernode_id IS UNIQUE",
    "CREATE INDEX supernode_subgraph IF NOT EXISTS FOR (p:Supernode) ON (p.subgraph_id)",
    "CREATE CONSTRAINT graph_summary_unique IF NOT EXISTS "
    "FOR (s:GraphSummary) REQUIRE s.graph_id IS UNIQUE",
    "CREATE INDEX layer_pair_graph IF NOT EXISTS FOR (p:LayerPair) ON (p.graph_id)",
    "CREATE INDEX motif_stat_graph IF NOT EXISTS FOR (m:MotifStat) ON (m.graph_id)",
    "CREATE CONSTRAINT roi_id_unique IF NOT EXISTS FOR (r:ROI) REQUIRE r.roi_id IS UNIQUE",
    "CREATE INDEX roi_run IF NOT EXISTS FOR (r:ROI) ON (r.run_id)",
    "CREATE INDEX node_graph_kind IF NOT EXISTS FOR (n:Node) ON (n.graph_id, n.kind)",
)
# Neo4j seeks a composite index only when a query constrains all of its properties, so without
# an index on ``graph_id`` alone every per-graph read and batched delete
# (``MATCH (n:Node {graph_id: $gid})``) scans all nodes of all graphs. ArcadeDB's schema is
# left as it was (its bulk path would maintain one more index).
# The full-text index serves `search_labels@neo4j.cypher` (ranked, Lucene syntax); ArcadeDB has
# no Cypher full-text procedure, and its variant scans (docs/queries.md).
BACKEND_SCHEMA_STATEMENTS = {
    "neo4j": (
        "CREATE INDEX node_graph IF NOT EXISTS FOR (n:Node) ON (n.graph_id)",
        "CREATE FULLTEXT INDEX node_label_text IF NOT EXISTS FOR (n:Node) ON EACH [n.label]",
    ),
}


def schema_statements(backend: str) -> tuple[str, ...]:
    """The statements that set up the schema on a server of ``backend`` (``store.backend``)."""
    return SCHEMA_STATEMENTS + BACKEND_SCHEMA_STATEMENTS.get(backend, ())
