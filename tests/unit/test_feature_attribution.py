"""Feature attribution graphs (transcoders, error nodes, direct effects) against ground truth.

The ground truth is written here, independently of the engine: the frozen replacement model as
an explicit function of one multiplier per source (each token embedding, each active feature's
decoder write, each error vector), with the attention patterns and norm scales *replaced* by
their cached values from a clean TransformerLens run. That function is affine in the
multipliers, so its autograd Jacobian at 1 is the exact edge matrix and its value at 0 the bias.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from circuit_atlas.errors import DictionaryError, ModelLoadError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest.features.attribution import attribute_features, choose_logits
from circuit_atlas.ingest.features.dictionaries import DictionarySet, load_dictionaries

from helpers.dictionaries import (
    exact_transcoders,
    random_clt,
    random_transcoders,
    write_circuit_tracer_set,
    write_clt,
    write_saelens_sae,
)
from helpers.models import tiny_model

TOKENS = [1, 7, 3, 12, 5, 9]


def dense(graph: CircuitGraph) -> np.ndarray:
    n = graph.n_nodes
    out = np.zeros((n, n))
    e = graph.edges
    out[e["target"].to_numpy(), e["source"].to_numpy()] = e["weight"].to_numpy()
    return out


def decoder(tensors: dict[str, torch.Tensor], source: int, target: int) -> torch.Tensor | None:
    """What layer ``source``'s features write into layer ``target`` (``[d_features, d_model]``),
    or None: a per-layer transcoder writes into its own layer, a cross-layer one (``W_dec``
    ``[d_features, n − source, d_model]``) into its own and every later layer."""
    W_dec = tensors["W_dec"]
    if W_dec.ndim == 2:
        return W_dec if source == target else None
    return W_dec[:, target - source] if target >= source else None


def ground_truth(model, layers, tokens, logit_ids, input_hook="ln2.hook_normalized"):
    """(edges [targets × sources], bias [targets], value at 1 [targets], real pre-activations),
    rows = all active features then logits, columns = features, errors, tokens. ``layers``
    holds per-layer or cross-layer transcoder tensors (see :func:`decoder`)."""
    tl = model.model
    toks = torch.tensor(tokens)[None]
    _, cache = tl.run_with_cache(toks)
    n_layers, n_pos = len(layers), len(tokens)
    x_in = [cache[f"blocks.{l_}.{input_hook}"][0] for l_ in range(n_layers)]
    mlp_out = [cache[f"blocks.{l_}.hook_mlp_out"][0] for l_ in range(n_layers)]
    acts, errors, active, unattributed = [], [], [], []
    for l_, t in enumerate(layers):
        pre = x_in[l_] @ t["W_enc"].T + t["b_enc"]
        thr = t.get("activation_function.threshold")
        a = torch.relu(pre) if thr is None else pre * (pre > thr)
        a[0] = 0
        skip = x_in[l_] @ t["W_skip"].T if "W_skip" in t else 0
        acts.append(a)
        writes = sum(
            acts[s_] @ w for s_ in range(l_ + 1) if (w := decoder(layers[s_], s_, l_)) is not None
        )
        err = mlp_out[l_] - (writes + t["b_dec"] + skip)
        unattributed.append(torch.zeros_like(err))
        unattributed[-1][0] = err[0]  # position 0's MLP output stays, as a constant
        err[0] = 0
        errors.append(err)
        active += [(l_, int(p), int(f)) for p, f in zip(*torch.nonzero(a, as_tuple=True))]
    active.sort()
    frozen = {
        name: value
        for name, value in cache.items()
        if name.endswith("hook_pattern") or name.endswith("hook_scale")
    }

    def targets(m_tok, m_feat, m_err):
        live = {}
        hooks: list[tuple[str, Any]] = [
            (name, lambda v, hook, c=c: c) for name, c in frozen.items()
        ]
        hooks.append(("hook_embed", lambda v, hook: tl.W_E[toks[0]][None] * m_tok[None, :, None]))
        for l_, t in enumerate(layers):

            def read(v, hook, l_=l_):
                live[l_] = v

            def write(v, hook, l_=l_, t=t):
                out = t["b_dec"] + unattributed[l_] + m_err[l_][:, None] * errors[l_]
                for i, (layer, p, f) in enumerate(active):
                    w = decoder(layers[layer], layer, l_)
                    if w is not None:
                        onehot = torch.zeros(n_pos, 1, dtype=torch.float64)
                        onehot[p] = 1
                        out = out + onehot * (m_feat[i] * acts[layer][p, f] * w[f])
                if "W_skip" in t:
                    out = out + live[l_][0] @ t["W_skip"].T
                return out[None]

            hooks.append((f"blocks.{l_}.{input_hook}", read))
            hooks.append((f"blocks.{l_}.hook_mlp_out", write))
        logits = tl.run_with_hooks(toks, fwd_hooks=hooks)[0, -1]
        pre = [
            live[layer][0, p] @ layers[layer]["W_enc"][f] + layers[layer]["b_enc"][f]
            for layer, p, f in active
        ]
        demeaned = logits - logits.mean()
        return torch.stack([*pre, *demeaned[logit_ids]])

    ones = (torch.ones(n_pos, dtype=torch.float64), torch.ones(len(active), dtype=torch.float64),
            torch.ones(n_layers, n_pos, dtype=torch.float64))  # fmt: skip
    jac = torch.autograd.functional.jacobian(targets, ones)
    edges = torch.cat([jac[1], jac[2].flatten(1), jac[0]], dim=1)  # features, errors, tokens
    bias = targets(*(torch.zeros_like(o) for o in ones))
    at_one = targets(*ones)
    real = torch.stack(
        [
            x_in[layer][p] @ layers[layer]["W_enc"][f] + layers[layer]["b_enc"][f]
            for layer, p, f in active
        ]
    )
    return edges.detach(), bias.detach(), at_one.detach(), real, active


@pytest.fixture(scope="module")
def model():
    return tiny_model(act_fn="relu")


def build(model, tmp_path: Path, layers, **kwargs) -> tuple[DictionarySet, Path]:
    folder = write_circuit_tracer_set(tmp_path / "tc", layers, **kwargs)
    return load_dictionaries(folder), folder


@pytest.mark.parametrize(
    "variant",
    [dict(), dict(jumprelu=True), dict(skip=True)],
    ids=["relu", "jumprelu", "skip"],
)
def test_every_edge_is_the_jacobian_of_the_frozen_replacement(model, tmp_path, variant):
    layers = random_transcoders(model, seed=3, **variant)
    dictionaries, _ = build(model, tmp_path, layers)
    graph = attribute_features(model, dictionaries, TOKENS, "g", batch_size=5)
    logit_ids = [int(t) for t in graph.nodes_frame().query("kind == 'logit'")["feature"]]
    edges, bias, at_one, real, active = ground_truth(model, layers, TOKENS, logit_ids)
    assert len(active) > 20  # the random transcoders make a real graph
    n_feat, n_logits = len(active), len(logit_ids)
    ours = dense(graph)
    n_sources = ours.shape[0] - n_logits
    rows = np.r_[np.arange(n_feat), np.arange(ours.shape[0] - n_logits, ours.shape[0])]
    got = ours[rows][:, :n_sources]
    want = edges.numpy()
    assert got.shape == want.shape
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-8 * scale
    # the replacement is exact on the prompt, and each total input is its edges plus its bias
    assert torch.allclose(at_one[:n_feat], real, atol=1e-10)
    assert np.allclose(got.sum(axis=1) + bias.numpy(), at_one.numpy(), atol=1e-10)
    # position 0 carries no features, and its error nodes no edges
    features = graph.nodes_frame().query("kind == 'feature'")
    assert (features["pos"] > 0).all()
    errors = graph.nodes_frame().query("kind == 'error' and pos == 0").index
    assert not np.abs(ours[:, errors]).any()


@pytest.mark.parametrize("jumprelu", [False, True], ids=["relu", "jumprelu"])
def test_every_cross_layer_edge_is_the_jacobian_of_the_frozen_replacement(
    model, tmp_path, jumprelu
):
    """A cross-layer transcoder (read at hook_resid_mid, circuit-tracer's default): a feature's
    edge is the sum of its writes' direct effects on every later layer."""
    layers = random_clt(model, seed=6, jumprelu=jumprelu)
    dictionaries = load_dictionaries(write_clt(tmp_path / "clt", layers))
    assert dictionaries.cross_layer and dictionaries.n_layers == model.n_layers
    graph = attribute_features(model, dictionaries, TOKENS, "clt", batch_size=4)
    logit_ids = [int(t) for t in graph.nodes_frame().query("kind == 'logit'")["feature"]]
    edges, bias, at_one, real, active = ground_truth(
        model, layers, TOKENS, logit_ids, input_hook="hook_resid_mid"
    )
    assert len(active) > 20
    ours = dense(graph)
    n_feat, n_logits = len(active), len(logit_ids)
    rows = np.r_[np.arange(n_feat), np.arange(ours.shape[0] - n_logits, ours.shape[0])]
    got = ours[rows][:, : ours.shape[0] - n_logits]
    want = edges.numpy()
    assert np.abs(got - want).max() <= 1e-8 * np.abs(want).max()
    assert torch.allclose(at_one[:n_feat], real, atol=1e-10)
    assert np.allclose(got.sum(axis=1) + bias.numpy(), at_one.numpy(), atol=1e-10)
    # the layer-0 features' writes into layer 1 matter: dropping them changes the logit rows
    layer0 = [i for i, (layer, _, _) in enumerate(active) if layer == 0]
    own_layer_only = [{**t, "W_dec": t["W_dec"][:, 0]} for t in layers]
    edges_own, *_ = ground_truth(model, own_layer_only, TOKENS, logit_ids, "hook_resid_mid")
    assert np.abs(want[n_feat:, layer0] - edges_own.numpy()[n_feat:, layer0]).max() > 1e-3
    one = dense(attribute_features(model, dictionaries, TOKENS, "clt", batch_size=1))
    assert np.allclose(one, ours, rtol=0, atol=1e-12)


def test_a_cross_layer_transcoder_that_writes_only_its_own_layer_is_the_per_layer_set(
    model, tmp_path
):
    """Exact per-layer transcoders written as a cross-layer one with zero later-layer decoders
    give the same graph, and still no error edges."""
    per_layer = exact_transcoders(model)
    n = model.n_layers
    as_clt = []
    for i, t in enumerate(per_layer):
        W_dec = torch.zeros(t["W_dec"].shape[0], n - i, model.d_model, dtype=torch.float64)
        W_dec[:, 0] = t["W_dec"]
        as_clt.append({**t, "W_dec": W_dec})
    folder = write_clt(tmp_path / "clt", as_clt, input_hook="ln2.hook_normalized", subfolder="w")
    clt = attribute_features(model, load_dictionaries(folder), TOKENS, "g")
    plain = attribute_features(model, build(model, tmp_path, per_layer)[0], TOKENS, "g")
    assert clt.nodes_frame()["node_key"].tolist() == plain.nodes_frame()["node_key"].tolist()
    assert np.allclose(dense(clt), dense(plain), rtol=0, atol=1e-12)
    errors = clt.nodes_frame().index[clt.nodes_frame()["kind"] == "error"]
    assert np.abs(dense(clt)[:, errors]).max() < 1e-10


def test_malformed_cross_layer_files_are_refused_by_name(model, tmp_path):
    good = random_clt(model)
    short = [{**good[0], "W_dec": good[0]["W_dec"][:, :1]}, good[1]]
    with pytest.raises(DictionaryError, match=r"W_dec_0 has shape \(24, 1, 16\), expected"):
        load_dictionaries(write_clt(tmp_path / "short", short))
    gone = write_clt(tmp_path / "gone", good)
    (gone / "W_dec_1.safetensors").unlink()
    with pytest.raises(DictionaryError, match=r"W_dec_1\.safetensors: no such file"):
        load_dictionaries(gone)
    renamed = write_clt(tmp_path / "renamed", [{**good[0], "W_enc": good[0]["W_enc"]}, good[1]])
    from safetensors.torch import save_file

    save_file({"W_enc": good[0]["W_enc"]}, str(renamed / "W_enc_0.safetensors"))
    with pytest.raises(DictionaryError, match=r"expected \['W_enc_0', 'b_dec_0', 'b_enc_0'\]"):
        load_dictionaries(renamed)
    escape = write_clt(tmp_path / "escape", good, subfolder="../elsewhere")
    with pytest.raises(DictionaryError, match="subfolder must be a relative folder name"):
        load_dictionaries(escape)
    nan = [good[0], {**good[1], "b_enc": good[1]["b_enc"] * float("nan")}]
    with pytest.raises(DictionaryError, match="b_enc holds NaN"):
        load_dictionaries(write_clt(tmp_path / "nan", nan))


def test_transcoders_that_are_the_mlps_leave_the_error_nodes_without_edges(model, tmp_path):
    dictionaries, _ = build(model, tmp_path, exact_transcoders(model))
    graph = attribute_features(model, dictionaries, TOKENS, "exact")
    nodes = graph.nodes_frame()
    errors = nodes.index[nodes["kind"] == "error"]
    ours = dense(graph)
    assert np.abs(ours[:, errors]).max() < 1e-10
    assert np.abs(ours).max() > 1e-3


def test_batching_does_not_change_the_graph(model, tmp_path):
    dictionaries, _ = build(model, tmp_path, random_transcoders(model, seed=4))
    one = dense(attribute_features(model, dictionaries, TOKENS, "g", batch_size=1))
    many = dense(attribute_features(model, dictionaries, TOKENS, "g", batch_size=7))
    huge = dense(attribute_features(model, dictionaries, TOKENS, "g", batch_size=1000))
    assert np.allclose(one, many, rtol=0, atol=1e-12)
    assert np.allclose(one, huge, rtol=0, atol=1e-12)


def test_max_feature_nodes_keeps_a_sub_block_of_the_full_graph(model, tmp_path):
    dictionaries, _ = build(model, tmp_path, random_transcoders(model, seed=5))
    full = attribute_features(model, dictionaries, TOKENS, "g", batch_size=4)
    part = attribute_features(model, dictionaries, TOKENS, "g", batch_size=4, max_feature_nodes=10)
    full_nodes = full.nodes_frame()["node_key"].tolist()
    part_nodes = part.nodes_frame()["node_key"].tolist()
    assert (part.nodes_frame()["kind"] == "feature").sum() == 10
    index = [full_nodes.index(k) for k in part_nodes]
    assert np.allclose(dense(part), dense(full)[np.ix_(index, index)], atol=1e-12)


def test_logits_are_the_most_probable_tokens_up_to_the_desired_probability():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64))
    assert choose_logits(logits, desired_logit_prob=0.9).token_ids == [0, 1, 2]
    assert choose_logits(logits, desired_logit_prob=0.75).token_ids == [0, 1]
    assert choose_logits(logits, max_n_logits=2).token_ids == [0, 1]
    assert choose_logits(logits, targets=[3]).probabilities == pytest.approx([0.05])


def test_bad_inputs_get_one_clear_error_each(model, tmp_path):
    dictionaries, folder = build(model, tmp_path, random_transcoders(model))
    with pytest.raises(ModelLoadError, match=r"token id\(s\) \[99\] outside"):
        attribute_features(model, dictionaries, [1, 99, 2], "g")
    wide = random_transcoders(tiny_model(d_model=20, d_head=5), seed=1)
    with pytest.raises(DictionaryError, match="the model's width is 16"):
        attribute_features(model, build(model, tmp_path / "w", wide)[0], TOKENS, "g")
    missing_hook = write_circuit_tracer_set(
        tmp_path / "hook", random_transcoders(model), input_hook="hook_nowhere"
    )
    with pytest.raises(DictionaryError, match="hook 'blocks.0.hook_nowhere', which the model"):
        attribute_features(model, load_dictionaries(missing_hook), TOKENS, "g")
    one_layer = write_circuit_tracer_set(tmp_path / "one", random_transcoders(model)[:1])
    with pytest.raises(DictionaryError, match="1 layer"):
        attribute_features(model, load_dictionaries(one_layer), TOKENS, "g")


def test_malformed_dictionary_files_are_refused_by_name(model, tmp_path):
    good = random_transcoders(model)
    cases = {
        "nan": [{**good[0], "W_dec": good[0]["W_dec"] * float("nan")}, good[1]],
        "shape": [{**good[0], "b_enc": good[0]["b_enc"][:-1]}, good[1]],
        "extra": [{**good[0], "log_thresholds": good[0]["b_enc"].clone()}, good[1]],
        "missing": [{k: v for k, v in good[0].items() if k != "b_dec"}, good[1]],
    }
    messages = {
        "nan": "W_dec holds NaN",
        "shape": "b_enc has shape",
        "extra": r"unexpected \['log_thresholds'\]",
        "missing": r"missing \['b_dec'\]",
    }
    for name, layers in cases.items():
        folder = write_circuit_tracer_set(tmp_path / name, layers)
        with pytest.raises(DictionaryError, match=messages[name]):
            load_dictionaries(folder)
    garbage = tmp_path / "garbage"
    write_circuit_tracer_set(garbage, good)
    (garbage / "layer_1.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(DictionaryError, match="layer_1.safetensors: not a readable safetensors"):
        load_dictionaries(garbage)
    gap = write_circuit_tracer_set(tmp_path / "gap", good)
    (gap / "layer_0.safetensors").rename(gap / "layer_2.safetensors")
    with pytest.raises(DictionaryError, match=r"missing for layer\(s\) \[0, 1\]|layer\(s\) \[0\]"):
        load_dictionaries(gap)
    clt = write_circuit_tracer_set(tmp_path / "clt", good, model_kind="cross_layer_transcoder")
    with pytest.raises(DictionaryError, match=r"no W_enc_<i>\.safetensors files"):
        load_dictionaries(clt)
    odd = write_circuit_tracer_set(tmp_path / "odd", good, model_kind="matryoshka")
    with pytest.raises(DictionaryError, match="unknown model_kind 'matryoshka'"):
        load_dictionaries(odd)
    with pytest.raises(DictionaryError, match="HF_HUB_OFFLINE|no such folder"):
        load_dictionaries(tmp_path / "nowhere")


def test_saelens_layout_loads_and_folds_b_dec_into_the_encoder(model, tmp_path):
    gen = torch.Generator().manual_seed(0)
    d, f = model.d_model, 12
    tensors = {
        "W_enc": torch.randn(d, f, generator=gen, dtype=torch.float64),
        "W_dec": torch.randn(f, d, generator=gen, dtype=torch.float64),
        "b_enc": torch.randn(f, generator=gen, dtype=torch.float64),
        "b_dec": torch.randn(d, generator=gen, dtype=torch.float64),
    }
    root = tmp_path / "saes"
    for layer in range(model.n_layers):
        write_saelens_sae(
            root / f"layer{layer}", tensors, f"blocks.{layer}.hook_resid_pre",
            apply_b_dec_to_input=True,
        )  # fmt: skip
    saes = load_dictionaries(root)
    assert saes.kind == "sae" and saes.n_layers == model.n_layers
    x = torch.randn(5, d, generator=gen, dtype=torch.float64)
    expected = torch.relu((x - tensors["b_dec"]) @ tensors["W_enc"] + tensors["b_enc"])
    assert torch.allclose(saes.layers[1].encode(x), expected, atol=1e-12)
    with pytest.raises(DictionaryError, match="these are SAEs"):
        attribute_features(model, saes, TOKENS, "g")
    write_saelens_sae(tmp_path / "topk", tensors, "blocks.0.hook_resid_pre", architecture="topk")
    with pytest.raises(DictionaryError, match="architecture 'topk' is not supported"):
        load_dictionaries(tmp_path / "topk")


CT_CASE = Path(__file__).resolve().parents[1] / "data" / "circuit_tracer"


@pytest.mark.parametrize(
    ("case_name", "transcoders"),
    [("features", "features_transcoders"), ("clt", "clt_transcoder")],
    ids=["per-layer", "cross-layer"],
)
def test_the_graph_equals_circuit_tracers_on_a_shared_case(case_name, transcoders):
    """circuit-tracer 0.5.0's own ``attribute`` on a tiny random model with per-layer JumpReLU
    transcoders (``make_feature_fixture.py``) or a JumpReLU cross-layer transcoder read at
    ``hook_resid_mid`` (``make_clt_fixture.py``), both in ``tests/data/circuit_tracer`` and run
    in a side environment because circuit-tracer pins transformers <= 4.57: same nodes, every
    edge within 1e-4 relative."""
    import json

    from circuit_atlas.ingest import load_graph
    from circuit_atlas.ingest.attribution.model_adapter import load_model

    case = json.loads((CT_CASE / f"{case_name}.json").read_text())
    theirs = load_graph(CT_CASE / f"{case_name}_graph.pt", graph_id="ct")
    model = load_model(str(CT_CASE / f"{case_name}_model.pt"), dtype="float64")
    dictionaries = load_dictionaries(CT_CASE / transcoders)
    ours = attribute_features(model, dictionaries, case["tokens"], "ours", batch_size=3)
    assert ours.nodes_frame()["node_key"].tolist() == theirs.nodes_frame()["node_key"].tolist()
    mine, reference = dense(ours), dense(theirs)
    scale = np.abs(reference).max()
    assert scale > 0.1 and (reference != 0).sum() > 500
    assert np.abs(mine - reference).max() <= 1e-4 * scale
    assert np.allclose(mine, reference, rtol=1e-4, atol=1e-6 * scale)
    probs = ours.nodes_frame().query("kind == 'logit'")["token_prob"].to_numpy()
    ref_probs = theirs.nodes_frame().query("kind == 'logit'")["token_prob"].to_numpy()
    assert np.allclose(probs, ref_probs, rtol=1e-6)
