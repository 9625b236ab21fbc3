// Strongest paths into a node: the top-k paths by product of |edge weights|.
//
// Paths end at $target_key and start at an input token (an embedding node), or at $source_key
// when it is given; every hop has |weight| >= $min_abs_weight. Ranked by the product of
// |weights| (log_sum, the sum of log|weight|, ranks the same); ties by the paths' node keys.
// Path length is bounded by max_length. Paths are enumerated (about 10x more per extra edge on
// dense graphs), and the weight test prunes the walk edge by edge (a quantified path pattern), so
// on dense graphs raise min_abs_weight to reach longer paths. The last two columns are computed
// for the k paths kept only.
//
// @param graph_id: string — the graph
// @param target_key: string — node key of the last node, e.g. a logit ('logit:27:6:64091:')
// @param source_key: string = null — node key of the first node; null: any input token
// @param min_abs_weight: float = 0.0 — ignore edges weaker than this
// @param k: int = 10 (1..10000) — number of paths
// @bound max_length: int = 3 (1..6) — longest path, in edges
// @columns nodes, weights, length, product, log_sum
MATCH (target:Node {graph_id: $graph_id, node_key: $target_key})
MATCH path = (source:Node {graph_id: $graph_id})
             (()-[r:EDGE WHERE $min_abs_weight <= 0.0 OR abs(r.weight) >= $min_abs_weight]->())
             {1,{{max_length}}}(target)
WHERE CASE WHEN $source_key IS NULL THEN source.kind = 'embedding'
           ELSE source.node_key = $source_key END
WITH [n IN nodes(path) | n.node_key] AS nodes, [r IN relationships(path) | r.weight] AS weights
WITH nodes, weights, reduce(p = 1.0, w IN weights | p * abs(w)) AS product
ORDER BY product DESC, nodes
LIMIT $k
RETURN nodes, weights, size(weights) AS length, product,
       reduce(s = 0.0, w IN weights | s + log(abs(w))) AS log_sum
ORDER BY product DESC, nodes
LIMIT $k
