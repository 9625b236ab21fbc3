// Strongest paths at ROI granularity: through an ROI quotient graph, from input tokens to a logit.
//
// The quotient graph of a single-graph ROI run keeps tokens and logits and has one node per ROI
// ('roi:::INDEX:'); this ranks token → ROI → … → logit paths by the product of |summed weights|,
// ties by node keys. Exact and pruned like strongest_paths (see its header): the quotient's
// nodes carry path bounds, a walk keeps only edges that can reach a threshold, and it vouches
// for its answer when it finds k paths at or above that threshold; otherwise the next walk
// runs with a threshold it can vouch for. The bound past an edge is the one to this logit
// (target_suffix_bound, at target_index · 6 + j; 6 is MAX_PATH_EDGES), much tighter in a dense
// quotient than the bound to anywhere (suffix_bound), which it falls back to where a graph has
// none.
//
// Thresholds, in turn: (1) the k-th best bound over a path's last two edges (|w1·w2| times the
// prefix bound before them; one-edge paths exactly); in a dense quotient the best paths share
// their last edge, so this is near the true k-th product and the walk expands little;
// (2) if that walk found k paths, its k-th (real paths, so exact), else the k-th best bound over
// the last edge alone, lower still; (3) the second walk's k-th, or 0 (every path).
//
// @param run_id: string — the ROI run; its quotient graph is '<run_id>-quotient'
// @param target_key: string — node key of the logit in the quotient graph
// @param k: int = 10 (1..10000) — number of paths
// @bound max_length: int = 4 (1..6) — longest path, in edges
// @columns nodes, labels, weights, product
MATCH (roi:ROI {run_id: $run_id})
WITH roi LIMIT 1
MATCH (quotient:Graph {graph_id: $run_id + '-quotient'})
WHERE quotient.status = 'ready'
  AND NOT EXISTS { (roi)-[:ROI_OF]->(g:Graph) WHERE coalesce(g.status, '') <> 'ready' }
MATCH (target:Node {graph_id: $run_id + '-quotient', node_key: $target_key})
CALL (target) {
    MATCH (last:Node)-[r:EDGE]->(target)
    WITH abs(r.weight) * last.prefix_bound[{{max_length}} - 1] AS product
    WHERE product IS NOT NULL
    ORDER BY product DESC
    LIMIT $k
    RETURN CASE WHEN count(product) < $k THEN 0.0 ELSE min(product) END AS one_edge_guess
}
CALL (target) {
    CALL (target) {
        MATCH (target)<-[r2:EDGE]-(:Node)<-[r1:EDGE]-(u:Node)
        WHERE {{max_length}} >= 2
        RETURN abs(r1.weight) * abs(r2.weight) * u.prefix_bound[{{max_length}} - 2] AS product
        UNION ALL
        MATCH (target)<-[r:EDGE]-(u:Node)
        WHERE u.kind = 'embedding'
        RETURN abs(r.weight) AS product
    }
    WITH product
    WHERE product IS NOT NULL
    ORDER BY product DESC
    LIMIT $k
    RETURN CASE WHEN count(product) < $k THEN 0.0 ELSE min(product) END AS guess
}
CALL (target, guess) {
    MATCH (source:Node {graph_id: $run_id + '-quotient', kind: 'embedding'})
    WITH target, guess, source, target.target_index * 6 + {{max_length}} - 1 AS tail
    MATCH path = (source)
        ((a)-[r:EDGE]->(b)
          WHERE guess <= 0.0
             OR any(i IN range(0, {{max_length}} - 1)
                    WHERE abs(r.weight) * a.prefix_bound[i]
                          * CASE WHEN tail IS NULL THEN b.suffix_bound[{{max_length}} - 1 - i]
                                 ELSE b.target_suffix_bound[tail - i] END >= guess * (1.0 - 1e-9))
        ){1,{{max_length}}}(target)
    WITH path, reduce(p = 1.0, r IN relationships(path) | p * abs(r.weight)) AS product
    ORDER BY product DESC, [n IN nodes(path) | n.node_key]
    LIMIT $k
    RETURN collect(path) AS first, min(product) AS kth
}
WITH target, one_edge_guess, first, kth, guess <= 0.0 OR (size(first) = $k AND kth >= guess) AS exact
WITH target, exact, first,
     CASE WHEN exact THEN 0.0 WHEN size(first) = $k THEN kth ELSE one_edge_guess END AS floor
CALL (target, exact, floor) {
    WITH target, floor
    WHERE NOT exact
    MATCH (source:Node {graph_id: $run_id + '-quotient', kind: 'embedding'})
    WITH target, floor, source, target.target_index * 6 + {{max_length}} - 1 AS tail
    MATCH path = (source)
        ((a)-[r:EDGE]->(b)
          WHERE floor <= 0.0
             OR any(i IN range(0, {{max_length}} - 1)
                    WHERE abs(r.weight) * a.prefix_bound[i]
                          * CASE WHEN tail IS NULL THEN b.suffix_bound[{{max_length}} - 1 - i]
                                 ELSE b.target_suffix_bound[tail - i] END >= floor * (1.0 - 1e-9))
        ){1,{{max_length}}}(target)
    WITH path, reduce(p = 1.0, r IN relationships(path) | p * abs(r.weight)) AS product
    ORDER BY product DESC, [n IN nodes(path) | n.node_key]
    LIMIT $k
    RETURN collect(path) AS second, min(product) AS second_kth
}
WITH target, exact, first, second,
     exact OR floor <= 0.0 OR (size(second) = $k AND second_kth >= floor) AS second_exact,
     CASE WHEN size(second) = $k THEN second_kth ELSE 0.0 END AS last_floor
CALL (target, second_exact, last_floor) {
    WITH target, last_floor
    WHERE NOT second_exact
    MATCH (source:Node {graph_id: $run_id + '-quotient', kind: 'embedding'})
    WITH target, last_floor, source, target.target_index * 6 + {{max_length}} - 1 AS tail
    MATCH path = (source)
        ((a)-[r:EDGE]->(b)
          WHERE last_floor <= 0.0
             OR any(i IN range(0, {{max_length}} - 1)
                    WHERE abs(r.weight) * a.prefix_bound[i]
                          * CASE WHEN tail IS NULL THEN b.suffix_bound[{{max_length}} - 1 - i]
                                 ELSE b.target_suffix_bound[tail - i] END >= last_floor * (1.0 - 1e-9))
        ){1,{{max_length}}}(target)
    WITH path, reduce(p = 1.0, r IN relationships(path) | p * abs(r.weight)) AS product
    ORDER BY product DESC, [n IN nodes(path) | n.node_key]
    LIMIT $k
    RETURN collect(path) AS third
}
UNWIND CASE WHEN exact THEN first WHEN second_exact THEN second ELSE third END AS path
WITH [n IN nodes(path) | n.node_key] AS nodes, [n IN nodes(path) | n.label] AS labels,
     [r IN relationships(path) | r.weight] AS weights
RETURN nodes, labels, weights, reduce(p = 1.0, w IN weights | p * abs(w)) AS product
ORDER BY product DESC, nodes
LIMIT $k
