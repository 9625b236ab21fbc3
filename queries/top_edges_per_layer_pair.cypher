// The k strongest edges (by |weight|) between each pair of layers of a graph.
//
// A node's layer is its `layer` property; nodes without one (input tokens) count as layer -1.
// Ties are broken by source then target key.
//
// @param graph_id: string — the graph
// @param k: int = 3 (1..1000) — edges per layer pair
// @param limit: int = 10000 (1..1000000) — row limit
// @columns source_layer, target_layer, rank, source, target, weight
MATCH (a:Node {graph_id: $graph_id})-[e:EDGE]->(b:Node)
WITH coalesce(a.layer, -1) AS source_layer, coalesce(b.layer, -1) AS target_layer,
     a.node_key AS source, b.node_key AS target, e.weight AS weight
ORDER BY abs(weight) DESC, source, target
WITH source_layer, target_layer, collect({source: source, target: target, weight: weight}) AS edges
WITH source_layer, target_layer, edges[0..$k] AS top
UNWIND range(0, size(top) - 1) AS i
RETURN source_layer, target_layer, i + 1 AS rank, top[i].source AS source,
       top[i].target AS target, top[i].weight AS weight
ORDER BY source_layer, target_layer, rank
LIMIT $limit
