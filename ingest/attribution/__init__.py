"""Attribution jobs: a model and a clean/corrupted task → a scored component graph.

One module per job:

- ``model_adapter``: the only module that knows TransformerLens (loading, hook names);
- ``component_graph``: nodes ``input``, ``a{l}.h{h}``, ``m{l}``, ``logits`` and every edge, as
  index arrays the methods share;
- ``tasks`` and ``metrics``: prompt pairs from CSV/JSONL, batching, and what is measured;
- ``engine``: the hooks that record node outputs, add patched deltas and read gradients;
- ``methods``: the registry (``eap``, ``eap-ig-inputs``, ``clean-corrupted``,
  ``eap-ig-activations``, ``eap-ig-partial-activations``, ``exact``);
- ``circuit`` and ``evaluation``: selecting edges and measuring faithfulness;
- ``export``: EAP-IG JSON and :class:`~circuit_atlas.graph.CircuitGraph` for the store.
"""
