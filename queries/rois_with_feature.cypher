// Every ROI, in any stored run, that holds a given transcoder feature (ROI graphs_with_feature).
//
// A one-graph run lists the feature when one of its instances (a node at some position) is a
// member; a cross-prompt run when the :Feature itself is. `positions` are the member instances'
// token positions (empty for cross-prompt runs, whose members have none). Runs on graphs
// derived from stored ones (consensus circuits, pruned graphs, ROI quotients: a :Graph with a
// DERIVED_FROM link) are left out unless include_derived.
//
// @param layer: int — the feature's layer
// @param feature: int — the feature's index within its layer
// @param model: string = null — only this model
// @param transcoder_set: string = null — only this transcoder set
// @param include_derived: bool = false — also include derived graphs (consensus, pruned, ROI quotients)
// @param limit: int = 1000 (1..1000000) — row limit
// @columns run_id, method, roi, size, min_layer, max_layer, graph_ids, positions
MATCH (f:Feature {layer: $layer, feature: $feature})
WHERE ($model IS NULL OR f.model = $model)
  AND ($transcoder_set IS NULL OR f.transcoder_set = $transcoder_set)
CALL (f) {
    MATCH (f)<-[:INSTANCE_OF]-(n:Node)-[:IN_ROI]->(r:ROI)
    RETURN r, n.pos AS pos
  UNION
    WITH f
    MATCH (f)-[:IN_ROI]->(r:ROI)
    RETURN r, null AS pos
}
WITH r, [p IN collect(pos) WHERE p IS NOT NULL] AS positions
WHERE NOT EXISTS { (r)-[:ROI_OF]->(g:Graph) WHERE coalesce(g.status, '') <> 'ready' }
  AND ($include_derived OR NOT EXISTS { (r)-[:ROI_OF]->(:Graph)-[:DERIVED_FROM]->(:Graph) })
RETURN r.run_id AS run_id, r.method AS method, r.index AS roi, r.size AS size,
       r.min_layer AS min_layer, r.max_layer AS max_layer, r.graph_ids AS graph_ids, positions
ORDER BY run_id, roi
LIMIT $limit
