"""``circuit-atlas demo``: the main job end to end (``attribution``: EAP-IG on SmolLM2-135M;
``tour``: the bundled real graphs through every capability of the store)."""
