// The k strongest edges (by |weight|) between each pair of layers of a graph.
//
// A node's layer is its `layer` property; nodes without one (input tokens) count as layer -1.
// Ties are broken by source then target key. Two passes over the edges, so that only numbers
// are sorted for the whole graph: the first finds each layer pair's k-th largest |weight|, the
// second keeps the edges at or above it (ties included) and ranks just those.
//
// @param graph_id: string — the graph
// @param k: int = 3 (1..1000) — edges per layer pair
// @param limit: int = 10000 (1..1000000) — row limit
// @columns source_layer, target_layer, rank, source, target, weight
MATCH (g:Graph {graph_id: $graph_id})
WHERE g.status = 'ready'
MATCH (a:Node {graph_id: $graph_id})-[e:EDGE]->(b:Node)
WITH coalesce(a.layer, -1) + 1 AS s, coalesce(b.layer, -1) + 1 AS t, abs(e.weight) AS strength
ORDER BY strength DESC
WITH s, t, collect(strength) AS strengths
WITH collect({s: s, t: t, floor: strengths[CASE WHEN size(strengths) < $k THEN size(strengths)
                                                 ELSE $k END - 1]}) AS pairs
WHERE size(pairs) > 0
WITH pairs, reduce(width = 0, p IN pairs | CASE WHEN p.s >= p.t AND p.s + 1 > width THEN p.s + 1
                                                 WHEN p.t + 1 > width THEN p.t + 1
                                                 ELSE width END) AS width
WITH width, [i IN range(0, width * width - 1) |
             head([p IN pairs WHERE p.s * width + p.t = i | p.floor])] AS floors
MATCH (a:Node {graph_id: $graph_id})-[e:EDGE]->(b:Node)
WITH a, b, e, coalesce(a.layer, -1) AS source_layer, coalesce(b.layer, -1) AS target_layer,
     floors[(coalesce(a.layer, -1) + 1) * width + coalesce(b.layer, -1) + 1] AS floor
WHERE abs(e.weight) >= floor
WITH source_layer, target_layer, a.node_key AS source, b.node_key AS target, e.weight AS weight
ORDER BY abs(weight) DESC, source, target
WITH source_layer, target_layer, collect({source: source, target: target, weight: weight}) AS edges
WITH source_layer, target_layer, edges[0..$k] AS top
UNWIND range(0, size(top) - 1) AS i
RETURN source_layer, target_layer, i + 1 AS rank, top[i].source AS source,
       top[i].target AS target, top[i].weight AS weight
ORDER BY source_layer, target_layer, rank
LIMIT $limit
