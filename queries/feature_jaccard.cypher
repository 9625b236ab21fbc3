// Pairwise Jaccard similarity of graphs' feature sets, by :Feature identity.
//
// For every pair of the given graphs (graph_a < graph_b by id): the number of transcoder
// features both contain, each graph's number of distinct features, and
// jaccard = shared / (size_a + size_b - shared). Pairs sharing no feature are included (0).
// Graphs derived from stored ones (consensus circuits, pruned graphs, ROI quotients: a :Graph
// with a DERIVED_FROM link) are left out unless include_derived, or named in graph_ids.
//
// @param graph_ids: list<string> — the graphs; [] means every stored graph but derived ones
// @param include_derived: bool = false — with graph_ids [], also include derived graphs (consensus, pruned, ROI quotients)
// @param limit: int = 100000 (1..10000000) — row limit
// @columns graph_a, graph_b, shared, size_a, size_b, jaccard
MATCH (g:Graph)
WHERE g.status = 'ready'
  AND (g.graph_id IN $graph_ids
       OR (size($graph_ids) = 0
           AND ($include_derived OR NOT EXISTS { (g)-[:DERIVED_FROM]->(:Graph) })))
OPTIONAL MATCH (g)<-[:IN_GRAPH]-(:Node)-[:INSTANCE_OF]->(f:Feature)
WITH g.graph_id AS graph, collect(DISTINCT f) AS features
WITH collect({graph: graph, features: features}) AS graphs
UNWIND graphs AS a
UNWIND graphs AS b
WITH a, b WHERE a.graph < b.graph
WITH a.graph AS graph_a, b.graph AS graph_b, size(a.features) AS size_a, size(b.features) AS size_b,
     size([f IN a.features WHERE f IN b.features]) AS shared
RETURN graph_a, graph_b, shared, size_a, size_b,
       CASE WHEN size_a + size_b - shared = 0 THEN 1.0
            ELSE toFloat(shared) / (size_a + size_b - shared) END AS jaccard
ORDER BY graph_a, graph_b
LIMIT $limit
