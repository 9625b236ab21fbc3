// Feature nodes across stored graphs, found by label text, prompt token, layer or index.
//
// Every filter that is given must hold: `text` is a case-insensitive substring of the label
// (Neuronpedia's clerp); `token` equals the prompt token at the node's position, exactly;
// `layer` and `feature` pick a transcoder feature. The same answer on every server: a plain
// scan of the feature nodes, no full-text index (fast enough for thousands of graphs; see
// docs/queries.md). Graphs derived from stored ones (consensus, pruned, ROI quotients) are left
// out unless include_derived, or named in graph_ids.
//
// @param text: string = null — text the label contains (case-insensitive)
// @param token: string = null — the prompt token at the feature's position, exactly
// @param layer: int = null — the feature's layer
// @param feature: int = null — the feature's index within its layer
// @param graph_ids: list<string> = [] — only these graphs; [] means every stored graph but derived ones
// @param include_derived: bool = false — with graph_ids [], also derived graphs
// @param k: int = 100 (1..1000000) — row limit
// @columns graph_id, node_key, layer, feature, pos, token, label, activation, influence
MATCH (g:Graph)
WHERE g.status = 'ready'
  AND (g.graph_id IN $graph_ids
       OR (size($graph_ids) = 0
           AND ($include_derived OR NOT EXISTS { (g)-[:DERIVED_FROM]->(:Graph) })))
MATCH (g)<-[:IN_GRAPH]-(n:Node)
WHERE n.kind = 'feature'
  AND ($text IS NULL OR toLower(coalesce(n.label, '')) CONTAINS toLower($text))
  AND ($token IS NULL OR n.token = $token)
  AND ($layer IS NULL OR n.layer = $layer)
  AND ($feature IS NULL OR n.feature = $feature)
RETURN g.graph_id AS graph_id, n.node_key AS node_key, n.layer AS layer, n.feature AS feature,
       n.pos AS pos, n.token AS token, n.label AS label, n.activation AS activation,
       n.influence AS influence
ORDER BY graph_id, layer, feature, pos
LIMIT $k
