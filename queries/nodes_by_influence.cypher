// Nodes of a graph ranked by their influence on the logits.
//
// Uses the influence `circuit-atlas score GRAPH` stores on each node (circuit-tracer's
// I = Σ wᵀÂᵏ, with the cumulative share and whether pruning keeps the node); a graph that has
// not been scored yet returns no rows. Ties by node key.
//
// @param graph_id: string — the graph (scored with `circuit-atlas score`)
// @param kind: string = null — only nodes of this kind (feature, error, embedding, logit)
// @param k: int = 20 (1..100000) — number of nodes
// @columns node_key, kind, layer, pos, label, influence, cumulative_share, kept_by_pruning
MATCH (g:Graph {graph_id: $graph_id})
WHERE g.status = 'ready'
MATCH (n:Node {graph_id: $graph_id})
WHERE n.score_influence IS NOT NULL AND ($kind IS NULL OR n.kind = $kind)
RETURN n.node_key AS node_key, n.kind AS kind, n.layer AS layer, n.pos AS pos, n.label AS label,
       n.score_influence AS influence, n.score_cumulative_share AS cumulative_share,
       n.kept_by_pruning AS kept_by_pruning
ORDER BY influence DESC, node_key
LIMIT $k
