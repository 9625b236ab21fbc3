"""Write an edge-attribution case scored by the reference implementation, hannamw/EAP-IG.

A tiny random float64 GPT-2-like model (``model.pt``: ``{"cfg", "state_dict"}`` with
TransformerLens names; 2 layers, 3 heads, MLPs, LayerNorm, a word-level vocabulary of 20 with a
BOS and a pad token), five clean/corrupted prompt pairs (``task.jsonl``: the exact token ids
EAP-IG's own ``tokenize_plus`` gave, BOS included, padding stripped; answer/foil ids), and the
scores EAP-IG's ``attribute`` gives with a logit-difference metric and the ``patching``
intervention for EAP, EAP-IG-inputs, clean-corrupted, EAP-IG-activations and exact
(``scores_<method>.json``, written by EAP-IG's own ``Graph.to_json``). ``case.json`` records
versions, steps, dtype and how the scores are normalised. The test
(``tests/unit/test_eap_ig_reference.py``) scores the same case with Circuit Atlas and compares
edge by edge.

It also writes the neuron-level node scores of EAP-IG's ``eap.attribute_node.attribute_node``
(``neuron=True``) for EAP and EAP-IG-inputs (``neurons_<method>.json``: the settings and, per
forward node, its ``d_model`` scores). Two things differ from the edge scores there, and the
test pins both: ``attribute_node``'s EAP-IG-inputs steps α = 1/m … 1 (``range(1, steps+1)``,
the right Riemann sum; its edge-level ``get_scores_eap_ig`` steps α = 0 … (m−1)/m), and its
``make_hooks_and_matrices`` takes an MLP node's gradient at ``node.in_hook``
(``hook_mlp_in``) while the activation difference is at its output (``hook_mlp_out``); input
and attention nodes use the output hook for both.

The prompts have different lengths (4 to 6 words after BOS) so that EAP-IG right-pads the batch;
within a pair clean and corrupted have the same length, as patching needs.

The metric is the per-example logit difference at the last real token. EAP-IG backpropagates a
scalar, so the gradient methods get its sum over the batch and EAP-IG divides by the number of
examples; ``exact`` gets it per example and EAP-IG averages it. Both give the mean over examples
of the per-example score, Circuit Atlas's ``aggregation="mean"``. EAP-IG's ``aggregation`` is
left at ``"sum"`` (its ``"mean"`` divides by ``d_model``, which Circuit Atlas does not do).

Running it needs EAP-IG, which pins nothing we can share with Circuit Atlas's environment
(transformer-lens 3.2 here, 3.9 there), so it runs in a side environment:

    git --git-dir=/work/.mirror/hannamw+EAP-IG/repo archive HEAD | tar -x -C /tmp/eapig-src
    /tmp/ct-venv/bin/pip install --no-deps /tmp/eapig-src && /tmp/ct-venv/bin/pip install \
        matplotlib einops
    /tmp/ct-venv/bin/python tests/data/eap_ig/make_fixture.py

Two workarounds, neither editing EAP-IG's files:

- EAP-IG allocates its score matrices with ``torch.zeros(..., device='cuda')``. Its modules
  ``eap.attribute``, ``eap.utils`` and ``eap.evaluate`` see ``torch`` through a proxy
  (:class:`_CpuTorch`) whose ``zeros``/``ones`` turn ``device='cuda'`` into the CPU; everything
  else is torch itself. This runs on a machine without a GPU.
- ``Graph.from_model`` keeps ``graph.scores`` in float32, which would round the float64 scores
  to ~6e-8 relative before ``to_json``; the fixture replaces that tensor with a float64 one of
  the same shape, so the JSON holds the scores EAP-IG computed in full precision.

``model.pt``'s cfg carries ``dtype=torch.float64``: a loader that builds the model from the cfg
(float32 by default) and loads the weights into it before casting would otherwise round them to
float32, and the two sides would agree only to ~1e-7.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import eap.attribute
import eap.attribute_node
import eap.evaluate
import eap.utils
import torch
from eap.attribute import attribute
from eap.attribute_node import attribute_node
from eap.graph import Graph
from eap.utils import tokenize_plus
from tokenizers import Tokenizer, models, pre_tokenizers
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
MIRROR = Path("/work/.mirror/hannamw+EAP-IG/repo")
VOCAB = 20
N_WORDS = VOCAB - 2  # t0 … t17
PAD, BOS = VOCAB - 2, VOCAB - 1
CONFIG = dict(
    n_layers=2,
    d_model=12,
    d_head=4,
    n_heads=3,
    d_mlp=48,
    d_vocab=VOCAB,
    n_ctx=16,
    act_fn="gelu_new",
    normalization_type="LN",
    positional_embedding_type="standard",
)
EDGE_HOOKS = dict(use_attn_result=True, use_split_qkv_input=True, use_hook_mlp_in=True)
# (clean words, corrupted words, answer word, foil word); pairs of equal length, batch ragged
PAIRS = [
    ("t3 t5 t7 t2", "t3 t9 t7 t2", "t4", "t8"),
    ("t1 t6 t6 t11 t0", "t1 t6 t12 t11 t0", "t2", "t5"),
    ("t9 t4 t13 t2", "t10 t4 t13 t15", "t7", "t3"),
    ("t14 t8 t1 t3 t16 t5", "t14 t8 t17 t3 t16 t5", "t6", "t1"),
    ("t2 t2 t10 t7 t9", "t12 t2 t10 t7 t4", "t11", "t13"),
]
METHODS = {  # EAP-IG's method name → (file stem, ig_steps)
    "EAP": ("eap", None),
    "EAP-IG-inputs": ("eap-ig-inputs", 5),
    "clean-corrupted": ("clean-corrupted", None),
    "EAP-IG-activations": ("eap-ig-activations", 3),
    "exact": ("exact", None),
}
NEURON_METHODS = {  # EAP-IG's method name → (file stem, ig_steps), for attribute_node
    "EAP": ("eap", None),
    "EAP-IG-inputs": ("eap-ig-inputs", 5),
}


class _CpuTorch:
    """``torch`` as EAP-IG's modules see it: ``device='cuda'`` in ``zeros``/``ones`` becomes the
    CPU (EAP-IG hard-codes CUDA for its score matrices); every other attribute is torch's."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def _cpu(kwargs: dict[str, Any]) -> dict[str, Any]:
        if str(kwargs.get("device", "")).startswith("cuda"):
            kwargs = {**kwargs, "device": "cpu"}
        return kwargs

    def zeros(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return torch.zeros(*args, **self._cpu(kwargs))

    def ones(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return torch.ones(*args, **self._cpu(kwargs))


for _module in (eap.attribute, eap.attribute_node, eap.utils, eap.evaluate):
    _module.torch = _CpuTorch()  # type: ignore[attr-defined]


def tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    """A word-level tokenizer ``t0 … t17`` plus a pad token and BOS."""
    vocab = {f"t{i}": i for i in range(N_WORDS)} | {"<pad>": PAD, "<|endoftext|>": BOS}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<pad>",
        padding_side="right",
    )
    fast.save_pretrained(str(folder))
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def build_model() -> HookedTransformer:
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        **CONFIG, **EDGE_HOOKS, model_name="tiny-eap-ig", device="cpu", dtype=torch.float64
    )
    with tempfile.TemporaryDirectory() as tmp:
        model = HookedTransformer(cfg, tokenizer=tokenizer(Path(tmp)))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            torch.nn.init.normal_(parameter, std=0.3)
            if name.endswith((".ln1.w", ".ln2.w", "ln_final.w")):
                parameter += 1.0  # LayerNorm gains around 1, as in a trained GPT-2
    model.eval()
    return model


def logit_diff(
    logits: torch.Tensor,
    clean_logits: torch.Tensor | None,
    input_lengths: torch.Tensor,
    labels: torch.Tensor,
    per_example: bool = False,
) -> torch.Tensor:
    """logit[answer] − logit[foil] at each example's last real token (EAP-IG's metric
    signature); summed over the batch unless ``per_example``."""
    rows = torch.arange(logits.shape[0])
    last = logits[rows, input_lengths - 1]
    diff = last[rows, labels[:, 0]] - last[rows, labels[:, 1]]
    return diff if per_example else diff.sum()


def per_example_logit_diff(logits, clean_logits, input_lengths, labels) -> torch.Tensor:
    return logit_diff(logits, clean_logits, input_lengths, labels, per_example=True)


def main() -> None:
    model = build_model()
    vocab = model.tokenizer.get_vocab()
    clean = [c for c, _, _, _ in PAIRS]
    corrupted = [c for _, c, _, _ in PAIRS]
    labels = torch.tensor([[vocab[a], vocab[f]] for _, _, a, f in PAIRS])
    clean_tokens, mask, lengths, _ = tokenize_plus(model, clean)
    corrupted_tokens, corrupted_mask, corrupted_lengths, _ = tokenize_plus(model, corrupted)
    assert torch.equal(lengths, corrupted_lengths) and torch.equal(mask, corrupted_mask)
    rows = []
    for i, (c, _, a, f) in enumerate(PAIRS):
        n = int(lengths[i])
        ids, cf_ids = clean_tokens[i, :n].tolist(), corrupted_tokens[i, :n].tolist()
        # BOS then exactly the words (no unknown-word fallback), padding only after them
        assert ids == [BOS] + [vocab[w] for w in c.split()], ids
        assert (clean_tokens[i, n:] == PAD).all()
        rows.append({"clean": ids, "corrupted": cf_ids, "answer": vocab[a], "foil": vocab[f]})
    (HERE / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state_dict = {k: v for k, v in state_dict.items() if "IGNORE" not in k and "mask" not in k}
    # dtype in the cfg: a loader that builds the model from the cfg and then loads the weights
    # gets float64 parameters to load them into (without it they pass through float32)
    cfg = {**CONFIG, "dtype": torch.float64}
    torch.save({"cfg": cfg, "state_dict": state_dict}, HERE / "model.pt")

    dataloader = [(clean, corrupted, labels)]
    for method, (stem, steps) in METHODS.items():
        graph = Graph.from_model(model)
        graph.scores = torch.zeros_like(graph.scores, dtype=torch.float64)  # see the docstring
        metric = per_example_logit_diff if method == "exact" else logit_diff
        attribute(
            model, graph, dataloader, metric, method=method, intervention="patching",
            aggregation="sum", ig_steps=steps, quiet=True,
        )  # fmt: skip
        graph.to_json(str(HERE / f"scores_{stem}.json"))

    for method, (stem, steps) in NEURON_METHODS.items():
        graph = Graph.from_model(model, neuron_level=True)
        # float64, like graph.scores above (from_model allocates float32, NaN = unscored)
        graph.neurons_scores = torch.full_like(graph.neurons_scores, torch.nan, dtype=torch.float64)
        attribute_node(
            model, graph, dataloader, logit_diff, method=method, intervention="patching",
            aggregation="sum", ig_steps=steps, quiet=True, neuron=True,
        )  # fmt: skip
        neurons = {
            name: graph.neurons_scores[graph.forward_index(node, attn_slice=False)].tolist()
            for name, node in graph.nodes.items()
            if name != "logits"
        }
        assert not any(x != x for row in neurons.values() for x in row), "unscored neurons"
        record = {
            "eap_ig_function": "eap.attribute_node.attribute_node(neuron=True)",
            "eap_ig_method": method,
            "ig_steps": steps,
            "eap_ig_aggregation": "sum",
            "circuit_atlas_aggregation": "mean",
            "neurons": neurons,
        }
        (HERE / f"neurons_{stem}.json").write_text(json.dumps(record, indent=1) + "\n")

    commit = subprocess.run(
        ["git", f"--git-dir={MIRROR}", "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    with torch.no_grad():
        clean_metric = per_example_logit_diff(
            model(clean_tokens, attention_mask=mask), None, lengths, labels
        )
        cf_metric = per_example_logit_diff(
            model(corrupted_tokens, attention_mask=mask), None, lengths, labels
        )
    case = {
        "generator": f"hannamw/EAP-IG {commit or 'unknown commit'} (eap {version('eap')}), "
        f"transformer-lens {version('transformer-lens')}, torch {version('torch')}",
        "dtype": "float64",
        "metric": "logit_diff, summed over the batch (exact: per example, averaged)",
        "intervention": "patching",
        "eap_ig_aggregation": "sum",
        "circuit_atlas_aggregation": "mean",
        "methods": {
            stem: {"eap_ig_method": method, "ig_steps": steps}
            for method, (stem, steps) in METHODS.items()
        },
        "n_examples": len(PAIRS),
        "batch_size": len(PAIRS),
        "clean_metric": clean_metric.tolist(),
        "corrupted_metric": cf_metric.tolist(),
    }
    (HERE / "case.json").write_text(json.dumps(case, indent=1) + "\n")


if __name__ == "__main__":
    main()
