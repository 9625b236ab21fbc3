"""Write a feature-attribution case computed by circuit-tracer's own ``attribute``.

A tiny random GPT-2-like model (``features_model.pt``: ``{"cfg", "state_dict"}``, float64) with
random per-layer JumpReLU transcoders (``features_transcoders/`` in circuit-tracer's layout),
one prompt of token ids starting with the BOS token, and the graph circuit-tracer 0.5.0
attributes on it (``features_graph.pt``, its ``Graph.to_pt``). The test
(``tests/unit/test_feature_attribution.py``) attributes the same prompt with Circuit Atlas and
compares nodes and edges.

circuit-tracer 0.5.0 pins transformers <= 4.57, which Circuit Atlas's environment does not
allow, so this runs in a side environment:

    python -m venv /tmp/ct-venv && /tmp/ct-venv/bin/pip install torch==2.13.0 \
        circuit-tracer==0.5.0 pyyaml
    /tmp/ct-venv/bin/python tests/data/circuit_tracer/make_feature_fixture.py
"""

from __future__ import annotations

import json
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch
import yaml
from circuit_tracer import ReplacementModel, attribute
from circuit_tracer.transcoder import SingleLayerTranscoder, TranscoderSet
from circuit_tracer.transcoder.activation_functions import JumpReLU
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformer_lens import HookedTransformerConfig
from transformers import PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
VOCAB, D_MODEL, D_TRANSCODER, N_LAYERS = 20, 12, 32, 2
BOS = VOCAB - 1
TOKENS = [BOS, 3, 5, 7, 2, 9]
CONFIG = dict(
    n_layers=N_LAYERS,
    d_model=D_MODEL,
    d_head=4,
    n_heads=3,
    d_mlp=48,
    d_vocab=VOCAB,
    n_ctx=32,
    act_fn="gelu_new",
    normalization_type="LN",
    positional_embedding_type="standard",
)
INPUT_HOOK, OUTPUT_HOOK = "ln2.hook_normalized", "hook_mlp_out"


def tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    """A word-level tokenizer ``t0 … t18`` plus BOS (circuit-tracer needs one to run)."""
    vocab = {f"t{i}": i for i in range(VOCAB - 1)} | {"<|endoftext|>": BOS}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )
    fast.save_pretrained(str(folder))
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def main() -> None:
    torch.manual_seed(0)
    dtype = torch.float64
    transcoders = {}
    for layer in range(N_LAYERS):
        tc = SingleLayerTranscoder(
            D_MODEL, D_TRANSCODER, JumpReLU(torch.zeros(D_TRANSCODER), 0.1), layer,
            device="cpu", dtype=dtype,
        )  # fmt: skip
        for _, parameter in tc.named_parameters():
            torch.nn.init.normal_(parameter, std=0.3)
        torch.nn.init.uniform_(tc.activation_function.threshold, 0, 0.2)
        transcoders[layer] = tc
    folder = HERE / "features_transcoders"
    folder.mkdir(exist_ok=True)
    for layer, tc in transcoders.items():
        save_file(
            {
                "W_enc": tc.W_enc.detach().contiguous(),
                "W_dec": tc.W_dec.detach().contiguous(),
                "b_enc": tc.b_enc.detach().contiguous(),
                "b_dec": tc.b_dec.detach().contiguous(),
                "activation_function.threshold": (
                    tc.activation_function.threshold.detach().contiguous()
                ),
            },
            str(folder / f"layer_{layer}.safetensors"),
        )
    (folder / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "model_kind": "transcoder_set",
                "feature_input_hook": INPUT_HOOK,
                "feature_output_hook": OUTPUT_HOOK,
            }
        )
    )
    transcoder_set = TranscoderSet(
        transcoders, feature_input_hook=INPUT_HOOK, feature_output_hook=OUTPUT_HOOK, scan="tiny"
    )
    cfg = HookedTransformerConfig(**CONFIG, model_name="tiny-features", device="cpu", dtype=dtype)
    with tempfile.TemporaryDirectory() as tmp:
        model = ReplacementModel.from_config(cfg, transcoder_set, tokenizer=tokenizer(Path(tmp)))
    for name, parameter in model.named_parameters():
        if "transcoders" not in name:
            torch.nn.init.normal_(parameter, std=0.3)
    # ReplacementModel wraps each MLP and the unembedding: store TransformerLens's own names
    state_dict = {
        name.replace(".old_mlp.", ".").replace(".old_unembed.", "."): value.detach().clone()
        for name, value in model.state_dict().items()
        if not name.startswith("transcoders") and "IGNORE" not in name and "mask" not in name
    }
    torch.save({"cfg": CONFIG, "state_dict": state_dict}, HERE / "features_model.pt")
    graph = attribute(torch.tensor(TOKENS), model, batch_size=4, max_feature_nodes=None)
    graph.to_pt(str(HERE / "features_graph.pt"))
    (HERE / "features.json").write_text(
        json.dumps(
            {
                "generator": f"circuit-tracer {version('circuit-tracer')}, "
                f"transformer-lens {version('transformer-lens')}",
                "tokens": TOKENS,
                "dtype": "float64",
                "batch_size": 4,
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
