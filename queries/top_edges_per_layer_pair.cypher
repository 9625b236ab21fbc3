// The k strongest edges (by |weight|) between each pair of layers of a graph.
//
// A node's layer is its `layer` property; nodes without one (input tokens) count as layer -1.
// Ties are broken by source then target key. Reads the graph's :LayerPair summaries, which the
// store computes when it writes the graph (each keeps a layer pair's 100 strongest edges;
// circuit_atlas/store/summaries.py), so it costs the same on a graph of any size; a graph
// stored by an older version is refused until `circuit-atlas upgrade` adds them.
//
// @param graph_id: string — the graph
// @param k: int = 3 (1..100) — edges per layer pair
// @param limit: int = 10000 (1..1000000) — row limit
// @columns source_layer, target_layer, rank, source, target, weight
MATCH (g:Graph {graph_id: $graph_id})
WHERE g.status = 'ready'
MATCH (s:GraphSummary {graph_id: $graph_id})
WITH s.node_keys AS keys  // read the 20k-key list once, not once a row (1.2 s)
MATCH (p:LayerPair {graph_id: $graph_id})
UNWIND range(0, CASE WHEN size(p.weights) < $k THEN size(p.weights) ELSE $k END - 1) AS i
RETURN p.source_layer AS source_layer, p.target_layer AS target_layer, i + 1 AS rank,
       keys[p.sources[i]] AS source, keys[p.targets[i]] AS target,
       p.weights[i] AS weight
ORDER BY source_layer, target_layer, rank
LIMIT $limit
