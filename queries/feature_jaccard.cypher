// Pairwise Jaccard similarity of graphs' feature sets, by :Feature identity.
//
// For every pair of the given graphs (graph_a < graph_b by id): the number of transcoder
// features both contain, each graph's number of distinct features, and
// jaccard = shared / (size_a + size_b - shared). Pairs sharing no feature are included (0).
// Graphs derived from stored ones (consensus circuits, pruned graphs, ROI quotients: a :Graph
// with a DERIVED_FROM link) are left out unless include_derived, or named in graph_ids.
// Reads each graph's distinct features from its :GraphSummary (computed when the store wrote it;
// circuit_atlas/store/summaries.py) and counts shared ones feature by feature, so the cost grows
// with the features, not with their product per pair; a graph stored by an older version is
// refused until `circuit-atlas upgrade` adds them.
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
MATCH (s:GraphSummary {graph_id: g.graph_id})
WITH collect(s) AS summaries
CALL (summaries) {
    UNWIND summaries AS s
    UNWIND s.feature_codes + s.wide_feature_codes AS code
    WITH s.feature_scope AS scope, code, s.graph_id AS graph
    WITH scope, code, collect(graph) AS holders
    WHERE size(holders) > 1
    UNWIND holders AS a
    UNWIND holders AS b
    WITH a, b WHERE a < b
    WITH a, b, count(*) AS shared
    RETURN collect({a: a, b: b, shared: shared}) AS found
}
WITH [s IN summaries | [s.graph_id, size(s.feature_codes) + size(s.wide_feature_codes)]] AS sizes,
     found
WITH sizes, found + reduce(pairs = [], x IN sizes |
        pairs + [y IN sizes WHERE x[0] < y[0] | {a: x[0], b: y[0], shared: 0}]) AS counts
UNWIND counts AS tally
WITH tally.a AS graph_a, tally.b AS graph_b, sum(tally.shared) AS shared, sizes
WITH graph_a, graph_b, shared,
     head([s IN sizes WHERE s[0] = graph_a | s[1]]) AS size_a,
     head([s IN sizes WHERE s[0] = graph_b | s[1]]) AS size_b
RETURN graph_a, graph_b, shared, size_a, size_b,
       CASE WHEN size_a + size_b - shared = 0 THEN 1.0
            ELSE toFloat(shared) / (size_a + size_b - shared) END AS jaccard
ORDER BY graph_a, graph_b
LIMIT $limit
