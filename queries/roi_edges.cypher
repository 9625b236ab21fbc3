// The strongest edges between ROIs of a run: the ROI-level version of top_edges_per_layer_pair.
//
// Reads the run's quotient graph ('<run_id>-quotient'), whose edge weight is the summed weight of
// every edge between two ROIs' members (for cross-prompt runs, the mean per prompt); for runs
// of one graph, input tokens and logits are quotient nodes too, so their edges to and from ROIs
// are listed as well. Each end carries its ROI's size and layer span (null for tokens and
// logits). Ranked by |weight|, ties by source then target key.
//
// @param run_id: string — the ROI run (printed by `circuit-atlas roi`)
// @param k: int = 20 (1..100000) — number of edges
// @columns source, source_label, source_size, source_layers, target, target_label, target_size, target_layers, weight
MATCH (roi:ROI {run_id: $run_id})
WITH roi LIMIT 1
MATCH (quotient:Graph {graph_id: $run_id + '-quotient'})
WHERE quotient.status = 'ready'
  AND NOT EXISTS { (roi)-[:ROI_OF]->(g:Graph) WHERE coalesce(g.status, '') <> 'ready' }
MATCH (a:Node {graph_id: $run_id + '-quotient'})-[e:EDGE]->(b:Node)
OPTIONAL MATCH (ra:ROI {run_id: $run_id})-[:AS_NODE]->(a)
OPTIONAL MATCH (rb:ROI {run_id: $run_id})-[:AS_NODE]->(b)
RETURN a.node_key AS source, a.label AS source_label, ra.size AS source_size,
       CASE WHEN ra IS NULL THEN null ELSE [ra.min_layer, ra.max_layer] END AS source_layers,
       b.node_key AS target, b.label AS target_label, rb.size AS target_size,
       CASE WHEN rb IS NULL THEN null ELSE [rb.min_layer, rb.max_layer] END AS target_layers,
       e.weight AS weight
ORDER BY abs(weight) DESC, source, target
LIMIT $k
