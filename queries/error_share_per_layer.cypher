// How much of each layer's direct effect comes from error nodes rather than features.
//
// Per layer: the summed |weight| of all edges leaving that layer's error nodes and feature nodes,
// and error_share = error_weight / (error_weight + feature_weight). A high share marks layers the
// transcoders explain poorly.
//
// @param graph_id: string — the graph
// @param limit: int = 1000 (1..100000) — row limit
// @columns layer, error_weight, feature_weight, error_share
MATCH (g:Graph {graph_id: $graph_id}), (a:Node {graph_id: $graph_id})-[e:EDGE]->(:Node)
WHERE g.status = 'ready' AND a.kind IN ['error', 'feature']
WITH a.layer AS layer, a.kind AS kind, sum(abs(e.weight)) AS mass
WITH layer,
     sum(CASE WHEN kind = 'error' THEN mass ELSE 0.0 END) AS error_weight,
     sum(CASE WHEN kind = 'feature' THEN mass ELSE 0.0 END) AS feature_weight
RETURN layer, error_weight, feature_weight, error_weight / (error_weight + feature_weight) AS error_share
ORDER BY layer
LIMIT $limit
