"""Write a cross-layer-transcoder case computed by circuit-tracer's own ``attribute``.

The tiny random GPT-2-like model of ``make_feature_fixture.py`` (same configuration and
tokenizer, its own random weights: ``clt_model.pt``) with a random JumpReLU cross-layer
transcoder read at ``hook_resid_mid`` (``clt_transcoder/``, written by circuit-tracer's
``CrossLayerTranscoder.to_safetensors`` plus a ``config.yaml``), one prompt of token ids, and
the graph circuit-tracer 0.5.0 attributes on it (``clt_graph.pt``). The test
(``tests/unit/test_feature_attribution.py``) attributes the same prompt with Circuit Atlas and
compares nodes and edges.

Runs in the side environment of ``make_feature_fixture.py`` (circuit-tracer pins transformers
<= 4.57), from this folder:

    /tmp/ct-venv/bin/python tests/data/circuit_tracer/make_clt_fixture.py
"""

from __future__ import annotations

import json
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch
import yaml
from circuit_tracer import ReplacementModel, attribute
from circuit_tracer.transcoder.cross_layer_transcoder import CrossLayerTranscoder
from make_feature_fixture import CONFIG, D_MODEL, N_LAYERS, TOKENS, tokenizer
from transformer_lens import HookedTransformerConfig

HERE = Path(__file__).resolve().parent
D_TRANSCODER = 24
INPUT_HOOK, OUTPUT_HOOK = "hook_resid_mid", "hook_mlp_out"


def main() -> None:
    torch.manual_seed(1)
    dtype = torch.float64
    clt = CrossLayerTranscoder(
        N_LAYERS, D_TRANSCODER, D_MODEL, activation_function="jump_relu", lazy_decoder=False,
        feature_input_hook=INPUT_HOOK, feature_output_hook=OUTPUT_HOOK, scan="tiny-clt",
        device=torch.device("cpu"), dtype=dtype,
    )  # fmt: skip
    with torch.no_grad():
        for name, parameter in clt.named_parameters():
            if "threshold" in name:
                parameter.uniform_(0, 0.2)
            else:
                parameter.normal_(std=0.3)
    folder = HERE / "clt_transcoder"
    clt.to_safetensors(str(folder))
    (folder / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "model_kind": "cross_layer_transcoder",
                "feature_input_hook": INPUT_HOOK,
                "feature_output_hook": OUTPUT_HOOK,
            }
        )
    )
    cfg = HookedTransformerConfig(**CONFIG, model_name="tiny-clt", device="cpu", dtype=dtype)
    with tempfile.TemporaryDirectory() as tmp:
        model = ReplacementModel.from_config(cfg, clt, tokenizer=tokenizer(Path(tmp)))
    for name, parameter in model.named_parameters():
        if "transcoders" not in name:
            torch.nn.init.normal_(parameter, std=0.3)
    state_dict = {
        name.replace(".old_mlp.", ".").replace(".old_unembed.", "."): value.detach().clone()
        for name, value in model.state_dict().items()
        if not name.startswith("transcoders") and "IGNORE" not in name and "mask" not in name
    }
    torch.save({"cfg": CONFIG, "state_dict": state_dict}, HERE / "clt_model.pt")
    graph = attribute(torch.tensor(TOKENS), model, batch_size=4, max_feature_nodes=None)
    graph.to_pt(str(HERE / "clt_graph.pt"))
    (HERE / "clt.json").write_text(
        json.dumps(
            {
                "generator": f"circuit-tracer {version('circuit-tracer')}, "
                f"transformer-lens {version('transformer-lens')}",
                "tokens": TOKENS,
                "dtype": "float64",
                "batch_size": 4,
                "n_active_features": int(graph.active_features.shape[0]),
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
