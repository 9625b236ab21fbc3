"""Feature-level attribution graphs from the platform's own jobs: dictionaries (per-layer
transcoders, SAEs) and the frozen replacement model whose direct effects are the graph's edges
(the attribution-graph method of Ameisen et al., 2025, "Circuit Tracing", as circuit-tracer
implements it; conventions in ``docs/feature_graphs.md``)."""
