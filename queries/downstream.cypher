// Everything downstream of a node within a number of hops, through edges above a weight threshold.
//
// One row per node that $node_key reaches by a path of at most `hops` edges whose every edge has
// |weight| >= $min_abs_weight; `hops` is the fewest such edges. Ordered by hops, then node key.
//
// @param graph_id: string — the graph
// @param node_key: string — the node to look downstream from
// @param min_abs_weight: float = 0.0 — ignore edges weaker than this
// @param limit: int = 1000 (1..100000) — row limit
// @bound hops: int = 2 (1..5) — how many edges forward
// @columns node_key, kind, layer, pos, label, hops
MATCH (g:Graph {graph_id: $graph_id})
WHERE g.status = 'ready'
MATCH (anchor:Node {graph_id: $graph_id, node_key: $node_key})
MATCH path = (anchor)
             (()-[r:EDGE WHERE $min_abs_weight <= 0.0 OR abs(r.weight) >= $min_abs_weight]->())
             {1,{{hops}}}(other:Node)
WITH other, min(length(path)) AS hops
RETURN other.node_key AS node_key, other.kind AS kind, other.layer AS layer, other.pos AS pos,
       other.label AS label, hops
ORDER BY hops, node_key
LIMIT $limit
