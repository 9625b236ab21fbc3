// Strongest paths into a node: the top-k paths by product of |edge weights|.
//
// Paths end at $target_key and start at an input token (an embedding node), or at $source_key
// when it is given; every hop has |weight| >= $min_abs_weight. Ranked by the product of
// |weights| (log_sum, the sum of log|weight|, ranks the same); ties by the paths' node keys.
// Path length is bounded by max_length; a path never repeats an edge (Cypher's trail semantics,
// which only matters on graphs with cycles).
//
// Exact, without listing every path: each node stores upper bounds on the products of walks
// into it from a token (prefix_bound) and out of it (suffix_bound), see
// circuit_atlas/store/path_bounds.py; where the target is a logit of a graph that stores them,
// the bound past an edge is the one to this logit (target_suffix_bound[target_index · 6 + j],
// 6 being MAX_PATH_EDGES), else the one to anywhere. A guess at the k-th best product comes from the target's
// in-edges (each bound there is a real path's product); the walk then never takes an edge whose
// best path through it falls below the guess. If that finds k paths at or above the guess they
// are the answer; otherwise a second walk prunes by the k-th product it did find (or by nothing,
// when it found fewer than k). These walks start at the target and go against the edges: tokens
// feed most of a graph, so a walk from them tests tens of thousands of edges before the first
// prune (4-6x slower on a 1M-edge graph). A $source_key that is not a token gets the plain walk,
// from it; a graph stored without bounds (by an older version; `circuit-atlas upgrade` adds
// them) gets the walks unpruned.
//
// @param graph_id: string — the graph
// @param target_key: string — node key of the last node, e.g. a logit ('logit:27:6:64091:')
// @param source_key: string = null — node key of the first node; null: any input token
// @param min_abs_weight: float = 0.0 — ignore edges weaker than this
// @param k: int = 10 (1..10000) — number of paths
// @bound max_length: int = 3 (1..6) — longest path, in edges
// @columns nodes, weights, length, product, log_sum
MATCH (g:Graph {graph_id: $graph_id})
WHERE g.status = 'ready'
MATCH (target:Node {graph_id: $graph_id, node_key: $target_key})
OPTIONAL MATCH (given:Node {graph_id: $graph_id, node_key: $source_key})
WITH target, $source_key IS NULL OR given.kind = 'embedding' AS bounded
CALL (target) {
    MATCH (last:Node)-[r:EDGE]->(target)
    WITH abs(r.weight) * last.prefix_bound[{{max_length}} - 1] AS product
    WHERE product IS NOT NULL
    ORDER BY product DESC
    LIMIT $k
    RETURN CASE WHEN count(product) < $k THEN 0.0 ELSE min(product) END AS guess
}
WITH target, bounded, CASE WHEN bounded THEN guess ELSE 0.0 END AS guess
CALL (target, bounded) {
    WITH target WHERE NOT bounded
    MATCH path = (source:Node {graph_id: $graph_id, node_key: $source_key})
        ((a)-[r:EDGE]->(b) WHERE $min_abs_weight <= 0.0 OR abs(r.weight) >= $min_abs_weight
        ){1,{{max_length}}}(target)
    WITH [n IN nodes(path) | n.node_key] AS nodes, [r IN relationships(path) | r.weight] AS weights
    WITH nodes, weights, reduce(p = 1.0, w IN weights | p * abs(w)) AS product
    ORDER BY product DESC, nodes
    LIMIT $k
    RETURN collect({nodes: nodes, weights: weights, product: product}) AS plain
}
CALL (target, bounded, guess) {
    WITH target, guess, target.target_index * 6 + {{max_length}} - 1 AS tail
    WHERE bounded
    MATCH path = (target)
        ((b)<-[r:EDGE]-(a)
          WHERE ($min_abs_weight <= 0.0 OR abs(r.weight) >= $min_abs_weight)
            AND (guess <= 0.0
                 OR any(i IN range(0, {{max_length}} - 1)
                        WHERE abs(r.weight) * a.prefix_bound[i]
                              * CASE WHEN tail IS NULL THEN b.suffix_bound[{{max_length}} - 1 - i]
                                 ELSE b.target_suffix_bound[tail - i] END >= guess * (1.0 - 1e-9)))
        ){1,{{max_length}}}(source)
    WHERE CASE WHEN $source_key IS NULL THEN source.kind = 'embedding'
               ELSE source.node_key = $source_key END
    WITH reverse([n IN nodes(path) | n.node_key]) AS nodes,
         reverse([r IN relationships(path) | r.weight]) AS weights
    WITH nodes, weights, reduce(p = 1.0, w IN weights | p * abs(w)) AS product
    ORDER BY product DESC, nodes
    LIMIT $k
    RETURN collect({nodes: nodes, weights: weights, product: product}) AS first,
           min(product) AS kth
}
WITH target, bounded, guess, plain, first, kth,
     guess <= 0.0 OR (size(first) = $k AND kth >= guess) AS exact
CALL (target, bounded, first, kth, exact) {
    WITH target, CASE WHEN size(first) = $k THEN kth ELSE 0.0 END AS floor,
         target.target_index * 6 + {{max_length}} - 1 AS tail
    WHERE bounded AND NOT exact
    MATCH path = (target)
        ((b)<-[r:EDGE]-(a)
          WHERE ($min_abs_weight <= 0.0 OR abs(r.weight) >= $min_abs_weight)
            AND (floor <= 0.0
                 OR any(i IN range(0, {{max_length}} - 1)
                        WHERE abs(r.weight) * a.prefix_bound[i]
                              * CASE WHEN tail IS NULL THEN b.suffix_bound[{{max_length}} - 1 - i]
                                 ELSE b.target_suffix_bound[tail - i] END >= floor * (1.0 - 1e-9)))
        ){1,{{max_length}}}(source)
    WHERE CASE WHEN $source_key IS NULL THEN source.kind = 'embedding'
               ELSE source.node_key = $source_key END
    WITH reverse([n IN nodes(path) | n.node_key]) AS nodes,
         reverse([r IN relationships(path) | r.weight]) AS weights
    WITH nodes, weights, reduce(p = 1.0, w IN weights | p * abs(w)) AS product
    ORDER BY product DESC, nodes
    LIMIT $k
    RETURN collect({nodes: nodes, weights: weights, product: product}) AS second
}
UNWIND CASE WHEN NOT bounded THEN plain WHEN exact THEN first ELSE second END AS found
RETURN found.nodes AS nodes, found.weights AS weights, size(found.weights) AS length,
       found.product AS product, reduce(s = 0.0, w IN found.weights | s + log(abs(w))) AS log_sum
ORDER BY product DESC, nodes
LIMIT $k
