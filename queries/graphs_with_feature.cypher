// Graphs that contain a given transcoder feature, with its positions and strongest activation.
//
// Graphs derived from stored ones (consensus circuits, pruned graphs, ROI quotients: a :Graph
// with a DERIVED_FROM link) are left out unless include_derived.
//
// @param layer: int — the feature's layer
// @param feature: int — the feature's index within its layer
// @param model: string = null — only this model
// @param transcoder_set: string = null — only this transcoder set
// @param include_derived: bool = false — also include derived graphs (consensus, pruned, ROI quotients)
// @param limit: int = 1000 (1..1000000) — row limit
// @columns graph_id, prompt, positions, max_activation
MATCH (f:Feature {layer: $layer, feature: $feature})
WHERE ($model IS NULL OR f.model = $model)
  AND ($transcoder_set IS NULL OR f.transcoder_set = $transcoder_set)
MATCH (f)<-[:INSTANCE_OF]-(n:Node)
WITH n
MATCH (g:Graph {graph_id: n.graph_id})
WHERE g.status = 'ready' AND ($include_derived OR NOT EXISTS { (g)-[:DERIVED_FROM]->(:Graph) })
WITH g, n ORDER BY n.pos
WITH g, collect(n.pos) AS positions, max(n.activation) AS max_activation
RETURN g.graph_id AS graph_id, g.prompt AS prompt, positions, max_activation
ORDER BY graph_id
LIMIT $limit
