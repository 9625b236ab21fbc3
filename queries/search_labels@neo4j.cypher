// Feature nodes across stored graphs whose label matches words, best match first.
//
// On Neo4j this is its full-text index on node labels (`node_label_text`, created with the
// schema): `text` is Lucene query syntax — words (any of them; `+word` for must), "phrases",
// `word~` for fuzzy, `wor*` for prefixes — and `score` is Lucene's relevance. ArcadeDB's
// Cypher has no full-text procedure, so there every word of `text` must occur in the label
// (case-insensitive substrings), operators are read as plain text and `score` is null: the
// same nodes for plain words, in graph order (docs/queries.md). Graphs derived from stored
// ones (consensus, pruned, ROI quotients) are left out unless include_derived, or named in
// graph_ids.
//
// @param text: string — words to find in labels (Lucene syntax on Neo4j)
// @param graph_ids: list<string> = [] — only these graphs; [] means every stored graph but derived ones
// @param include_derived: bool = false — with graph_ids [], also derived graphs
// @param k: int = 100 (1..1000000) — row limit
// @columns graph_id, node_key, layer, feature, pos, token, label, activation, influence, score
WITH $text AS text
WHERE trim(text) <> ''
CALL db.index.fulltext.queryNodes('node_label_text', text) YIELD node, score
WITH node AS n, score
WHERE n.kind = 'feature'
MATCH (g:Graph {graph_id: n.graph_id})
WHERE g.status = 'ready'
  AND (g.graph_id IN $graph_ids
       OR (size($graph_ids) = 0
           AND ($include_derived OR NOT EXISTS { (g)-[:DERIVED_FROM]->(:Graph) })))
RETURN g.graph_id AS graph_id, n.node_key AS node_key, n.layer AS layer, n.feature AS feature,
       n.pos AS pos, n.token AS token, n.label AS label, n.activation AS activation,
       n.influence AS influence, score
ORDER BY score DESC, graph_id, layer, feature, pos
LIMIT $k
