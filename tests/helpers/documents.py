"""Small importer documents: one valid Neuronpedia file, and malformed variants with the
one-line error each must give."""

from __future__ import annotations

import json

from circuit_atlas.ingest.neuronpedia import cantor_pair


def small_document() -> dict:
    return {
        "metadata": {
            "slug": "small",
            "scan": "toy",
            "prompt_tokens": ["<bos>", "a"],
            "schema_version": 1,
            "info": {"transcoder_set": "toy-tc"},
        },
        "nodes": [
            {
                "node_id": "E_1_0",
                "feature": 0,
                "layer": "E",
                "ctx_idx": 0,
                "feature_type": "embedding",
            },
            {
                "node_id": "0_3_1",
                "feature": cantor_pair(0, 3),
                "layer": "0",
                "ctx_idx": 1,
                "feature_type": "cross layer transcoder",
                "activation": 1.5,
            },
            {
                "node_id": "1_9_1",
                "feature": 9,
                "layer": "1",
                "ctx_idx": 1,
                "feature_type": "logit",
                "token_prob": 0.5,
            },
        ],
        "links": [
            {"source": "E_1_0", "target": "0_3_1", "weight": 1.0},
            {"source": "0_3_1", "target": "1_9_1", "weight": 0.25},
        ],
    }


def malformed_documents() -> dict[str, tuple[str, str]]:
    """name → (file text, expected fragment of the one-line error)."""
    good = small_document()
    cases = {}
    text = json.dumps(good)
    cases["truncated"] = (text[: len(text) // 2], "truncated JSON")
    missing = json.loads(text)
    del missing["nodes"][1]["ctx_idx"]
    cases["missing-field"] = (json.dumps(missing), "nodes[1].ctx_idx: Field required")
    nan = text.replace('"weight": 0.25', '"weight": NaN')
    cases["nan-weight"] = (nan, "links[1].weight")
    unknown = json.loads(text)
    unknown["links"][1]["target"] = "9_9_9"
    cases["unknown-node"] = (json.dumps(unknown), "links[1].target: '9_9_9' is not the id")
    wrong = json.loads(text)
    wrong["links"][0]["weight"] = "heavy"
    cases["wrong-type"] = (json.dumps(wrong), "links[0].weight")
    wrong_layer = json.loads(text)
    wrong_layer["nodes"][1]["feature"] = cantor_pair(5, 3)
    cases["bad-feature-code"] = (json.dumps(wrong_layer), "nodes[1].feature")
    cases["not-a-graph"] = ('{"hello": 1}', "not a recognised graph format")
    return cases
