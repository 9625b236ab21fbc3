// The k strongest edges (by |weight|) between each pair of layers of a graph.
//
// A node's layer is its `layer` property; nodes without one (input tokens) count as layer -1.
// Ties are broken by source then target key. Reads the graph's :LayerPair summaries, which the
// store computes when it writes the graph (each keeps a layer pair's 100 strongest edges;
// circuit_atlas/store/summaries.py), so it costs the same on a graph of any size; a graph
// stored by an older version is refused until `circuit-atlas upgrade` adds them. Node keys are
// looked up after the rows are sorted and cut: Neo4j defers a projection past ORDER BY, so a
// lookup in the SELECT carried the graph's 20k-key list through the sort once per row (2 GiB of
// transaction memory at k = 10 on a 1M-edge graph).
//
// @param graph_id: string — the graph
// @param k: int = 3 (1..100) — edges per layer pair
// @param limit: int = 10000 (1..1000000) — row limit
// @columns source_layer, target_layer, rank, source, target, weight
MATCH (g:Graph {graph_id: $graph_id})
WHERE g.status = 'ready'
MATCH (p:LayerPair {graph_id: $graph_id})
UNWIND range(0, CASE WHEN size(p.weights) < $k THEN size(p.weights) ELSE $k END - 1) AS i
WITH p.source_layer AS source_layer, p.target_layer AS target_layer, i + 1 AS rank,
     p.sources[i] AS source, p.targets[i] AS target, p.weights[i] AS weight
ORDER BY source_layer, target_layer, rank
LIMIT $limit
WITH collect([source_layer, target_layer, rank, source, target, weight]) AS rows
MATCH (s:GraphSummary {graph_id: $graph_id})
WITH s.node_keys AS keys, rows  // read the key list once
UNWIND rows AS r  // in the sorted order
RETURN r[0] AS source_layer, r[1] AS target_layer, r[2] AS rank, keys[r[3]] AS source,
       keys[r[4]] AS target, r[5] AS weight
LIMIT $limit
