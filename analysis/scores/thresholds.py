"""circuit-tracer's default pruning thresholds, in a module with no imports so the CLI can show
them as defaults without loading the scoring code."""

DEFAULT_NODE_THRESHOLD = 0.8
DEFAULT_EDGE_THRESHOLD = 0.98
