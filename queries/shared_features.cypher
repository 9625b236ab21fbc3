// Features shared by a set of graphs (by :Feature identity), with counts and mean activation.
//
// A feature is the same across graphs when model, transcoder set, layer and index agree. `graphs`
// counts the graphs it occurs in, `nodes` its instances (one per position), `mean_activation`
// averages over instances. Ordered by graphs (descending), then layer and index. Graphs
// derived from stored ones (consensus circuits, pruned graphs, ROI quotients: a :Graph with
// a DERIVED_FROM link) are not counted unless include_derived, or named in graph_ids.
//
// @param graph_ids: list<string> — the graphs; [] means every stored graph but derived ones
// @param include_derived: bool = false — with graph_ids [], also include derived graphs (consensus, pruned, ROI quotients)
// @param min_graphs: int = 2 (1..1000000) — keep features present in at least this many graphs
// @param k: int = 100 (1..1000000) — number of features
// @columns model, transcoder_set, layer, feature, graphs, nodes, mean_activation
MATCH (g:Graph)
WHERE g.status = 'ready'
  AND (g.graph_id IN $graph_ids
       OR (size($graph_ids) = 0
           AND ($include_derived OR NOT EXISTS { (g)-[:DERIVED_FROM]->(:Graph) })))
MATCH (g)<-[:IN_GRAPH]-(n:Node)-[:INSTANCE_OF]->(f:Feature)
WITH f, count(DISTINCT g) AS graphs, count(n) AS nodes, avg(n.activation) AS mean_activation
WHERE graphs >= $min_graphs
RETURN f.model AS model, f.transcoder_set AS transcoder_set, f.layer AS layer,
       f.feature AS feature, graphs, nodes, mean_activation
ORDER BY graphs DESC, layer, feature
LIMIT $k
