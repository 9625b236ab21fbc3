// How much of each layer's direct effect comes from error nodes rather than features.
//
// Per layer: the summed |weight| of all edges leaving that layer's error nodes and feature nodes,
// and error_share = error_weight / (error_weight + feature_weight). A high share marks layers the
// transcoders explain poorly. Reads the sums the store computes when it writes the graph
// (:GraphSummary, circuit_atlas/store/summaries.py); a graph stored by an older version is
// refused until `circuit-atlas upgrade` adds them.
//
// @param graph_id: string — the graph
// @param limit: int = 1000 (1..100000) — row limit
// @columns layer, error_weight, feature_weight, error_share
MATCH (g:Graph {graph_id: $graph_id})
WHERE g.status = 'ready'
MATCH (s:GraphSummary {graph_id: $graph_id})
UNWIND range(0, size(s.layers) - 1) AS i
WITH s.layers[i] AS layer, s.error_weight[i] AS error_weight, s.feature_weight[i] AS feature_weight
RETURN layer, error_weight, feature_weight, error_weight / (error_weight + feature_weight) AS error_share
ORDER BY layer
LIMIT $limit
