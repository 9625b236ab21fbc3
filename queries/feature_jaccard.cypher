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
// Graphs are numbered in id order and pairs counted by number: only pairs (a < b) are formed,
// and integer keys group faster than ids (1.25 s -> 0.76 s on 59 graphs on ArcadeDB, same-run
// A/B).
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
  AND EXISTS { MATCH (:GraphSummary {graph_id: g.graph_id}) }
WITH g.graph_id AS id ORDER BY id
WITH collect(id) AS ids
CALL (ids) {
    UNWIND range(0, size(ids) - 1) AS i
    MATCH (s:GraphSummary {graph_id: ids[i]})
    UNWIND s.feature_codes + s.wide_feature_codes AS code
    WITH s.feature_scope AS scope, code, i
    WITH scope, code, collect(i) AS holders
    WHERE size(holders) > 1
    UNWIND range(0, size(holders) - 2) AS x
    UNWIND holders[x + 1..] AS y
    WITH holders[x] AS h, y
    WITH CASE WHEN h < y THEN h ELSE y END AS a, CASE WHEN h < y THEN y ELSE h END AS b
    WHERE a < b
    WITH a, b, count(*) AS shared
    RETURN collect([a, b, shared]) AS found
}
CALL (ids) {
    UNWIND range(0, size(ids) - 1) AS i
    MATCH (s:GraphSummary {graph_id: ids[i]})
    WITH i, size(s.feature_codes) + size(s.wide_feature_codes) AS features
    ORDER BY i
    RETURN collect(features) AS sizes
}
CALL (ids, found) {
    WITH size(ids) AS n, found
    UNWIND found + [p IN range(0, n * n - 1) WHERE p / n < p % n | [p / n, p % n, 0]] AS tally
    RETURN tally[0] AS a, tally[1] AS b, sum(tally[2]) AS shared
}
WITH ids[a] AS graph_a, ids[b] AS graph_b, shared, sizes[a] AS size_a, sizes[b] AS size_b, a, b
ORDER BY a, b
RETURN graph_a, graph_b, shared, size_a, size_b,
       CASE WHEN size_a + size_b - shared = 0 THEN 1.0
            ELSE toFloat(shared) / (size_a + size_b - shared) END AS jaccard
LIMIT $limit
