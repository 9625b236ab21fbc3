// Graphs in which feature A drives feature B directly: an edge from an instance of A to one of B.
//
// One row per such edge, with the positions of both instances and the edge weight. Graphs
// derived from stored ones (consensus circuits, pruned graphs, ROI quotients: a :Graph with a
// DERIVED_FROM link) are left out unless include_derived.
//
// @param a_layer: int — layer of feature A (the source)
// @param a_feature: int — index of feature A
// @param b_layer: int — layer of feature B (the target)
// @param b_feature: int — index of feature B
// @param model: string = null — only this model
// @param include_derived: bool = false — also include derived graphs (consensus, pruned, ROI quotients)
// @param limit: int = 1000 (1..1000000) — row limit
// @columns graph_id, a_pos, b_pos, weight
MATCH (fa:Feature {layer: $a_layer, feature: $a_feature})<-[:INSTANCE_OF]-(a:Node)
WHERE $model IS NULL OR fa.model = $model
MATCH (a)-[e:EDGE]->(b:Node)-[:INSTANCE_OF]->(fb:Feature {layer: $b_layer, feature: $b_feature})
WHERE fb.model = fa.model AND fb.transcoder_set = fa.transcoder_set
WITH a, b, e
MATCH (g:Graph {graph_id: a.graph_id})
WHERE g.status = 'ready' AND ($include_derived OR NOT EXISTS { (g)-[:DERIVED_FROM]->(:Graph) })
RETURN g.graph_id AS graph_id, a.pos AS a_pos, b.pos AS b_pos, e.weight AS weight
ORDER BY graph_id, a_pos, b_pos
LIMIT $limit
