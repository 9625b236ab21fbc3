"""Sparse feature circuits checked against independent autograd on the model with SAEs spliced in
(float64, a tiny random model without norms and random SAEs of unequal sizes per site).

The references here use TransformerLens hooks directly (never ``ingest/sae_circuits``): nodes
are read as ``f = relu(x W_enc + b_enc)``, ``ε = x − (f W_dec + b_dec)``; a site is *held* by
replacing its activation with its clean value; edges come from forward-mode JVPs, one upstream
node at a time (the code under test does one backward pass per downstream node).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from circuit_atlas.errors import DictionaryError
from circuit_atlas.ingest.attribution.tasks import Batch, Task
from circuit_atlas.ingest.sae_circuits.circuit import CircuitSettings, feature_circuit
from circuit_atlas.ingest.sae_circuits.effects import (
    attribution_patching,
    batch_state,
    edge_blocks,
    integrated_gradients,
)
from circuit_atlas.ingest.sae_circuits.sites import Site, build_sites, load_saes, parents
from circuit_atlas.ingest.sae_circuits.spliced import run_spliced

from helpers.dictionaries import random_site_saes, write_site_saes
from helpers.models import logit_diff, random_task, tiny_model

Tensor = torch.Tensor


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[Site], Task, Batch]:
    model = tiny_model(normalization_type=None)
    folder = write_site_saes(tmp_path_factory.mktemp("saes"), random_site_saes(model))
    sites = build_sites(model, load_saes(folder))
    task = random_task(4, seed=3, lengths=(5, 6))  # equal lengths: one batch, no padding
    batch = next(task.batches(8, 0))
    return model, sites, task, batch


def metric(logits: Tensor, batch: Batch) -> Tensor:
    return logit_diff(logits, batch)


# --------------------------------------------------------------------------- references
def nodes_of(site: Site, x: Tensor) -> tuple[Tensor, Tensor]:
    assert site.sae is not None
    f = torch.relu(x @ site.sae.W_enc.T + site.sae.b_enc)
    return f, x - (f @ site.sae.W_dec + site.sae.b_dec)


def rebuilt(site: Site, f: Tensor, e: Tensor) -> Tensor:
    assert site.sae is not None
    return f @ site.sae.W_dec + site.sae.b_dec + e


def cache(model: Any, tokens: Tensor) -> dict[str, Tensor]:
    _, stored = model.model.run_with_cache(tokens)
    return {name: stored[name].detach() for name in stored.keys()}


def hooked(model: Any, tokens: Tensor, replace: dict[str, Callable[[Tensor], Tensor]]) -> Tensor:
    hooks = [(name, lambda x, hook, fn=fn: fn(x)) for name, fn in replace.items()]
    return model.run(tokens, hooks=hooks)


def reference_gradients(model, sites, batch) -> list[tuple[Tensor, Tensor]]:
    """∂m/∂f and ∂m/∂ε of each site, one site replaced by leaves at a time."""
    clean = cache(model, batch.clean)
    out = []
    for site in sites:
        f0, e0 = nodes_of(site, clean[site.hook])
        f, e = f0.clone().requires_grad_(True), e0.clone().requires_grad_(True)
        logits = hooked(
            model, batch.clean, {site.hook: lambda x, s=site, f=f, e=e: rebuilt(s, f, e)}
        )
        g_f, g_e = torch.autograd.grad(metric(logits, batch).sum(), [f, e])
        out.append((g_f, g_e))
    return out


def deltas(model, sites, batch) -> list[tuple[Tensor, Tensor]]:
    clean, corrupt = cache(model, batch.clean), cache(model, batch.corrupted)
    result = []
    for site in sites:
        fc, ec = nodes_of(site, clean[site.hook])
        fp, ep = nodes_of(site, corrupt[site.hook])
        result.append((fp - fc, ep - ec))
    return result


def direct_jvp(model, sites, batch, up: int, down: int, v_f: Tensor, v_e: Tensor):
    """d(nodes of ``down``)/dt along ``up``'s nodes moving by (v_f, v_e), every other site held
    at its clean activation."""
    clean = cache(model, batch.clean)
    f0, e0 = nodes_of(sites[up], clean[sites[up].hook])

    def downstream(t: Tensor) -> tuple[Tensor, Tensor]:
        read: dict[str, Tensor] = {}

        def at_down(x: Tensor) -> Tensor:
            read["x"] = x
            return x

        replace: dict[str, Callable[[Tensor], Tensor]] = {
            s.hook: (lambda h: lambda x: clean[h])(s.hook)
            for i, s in enumerate(sites)
            if i not in (up, down)
        }
        replace[sites[up].hook] = lambda x: rebuilt(sites[up], f0 + t * v_f, e0 + t * v_e)
        replace[sites[down].hook] = at_down
        hooked(model, batch.clean, replace)
        return nodes_of(sites[down], read["x"])

    _, tangent = torch.autograd.functional.jvp(downstream, torch.zeros((), dtype=torch.float64),
                                               torch.ones((), dtype=torch.float64))  # fmt: skip
    return tangent


# --------------------------------------------------------------------------- tests
def test_splicing_changes_nothing_the_model_computes(setup):
    model, sites, _, batch = setup
    spliced, nodes = run_spliced(model, sites, batch.clean)
    assert torch.equal(spliced, model.run(batch.clean))
    active = [float((nodes[i].features > 0).double().mean()) for i in range(len(sites))]
    assert min(active) > 0.2 and len(sites) == 1 + 3 * model.n_layers


def test_node_gradients_equal_autograd_with_one_site_replaced(setup):
    model, sites, _, batch = setup
    state = batch_state(model, sites, batch, metric, "patching")
    for i, (g_f, g_e) in enumerate(reference_gradients(model, sites, batch)):
        torch.testing.assert_close(state.grads[i].features, g_f, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(state.grads[i].error, g_e, rtol=1e-10, atol=1e-12)


def test_every_edge_equals_an_independent_jvp(setup):
    """Each (upstream site → child) pair: one feature and one error node upstream, a feature and
    the error downstream at one position, and the same feature summed over positions."""
    model, sites, _, batch = setup
    state = batch_state(model, sites, batch, metric, "patching")
    grads = reference_gradients(model, sites, batch)
    delta = deltas(model, sites, batch)
    gen = torch.Generator().manual_seed(0)
    checked = 0
    for up in range(len(sites)):
        children = [c for c in range(len(sites)) if up in parents(sites, c)]
        for down in children:
            pos = int(torch.randint(1, 5, (1,), generator=gen))
            feature = int(torch.randint(0, sites[down].d_features, (1,), generator=gen))
            targets = [(pos, feature), (pos, -1), (-1, feature)]
            (block,) = [b for b in edge_blocks(model, sites, batch, state, up, {down: targets})
                        if b.downstream == down]  # fmt: skip
            up_pos = int(torch.randint(0, pos + 1, (1,), generator=gen))
            up_feature = int(torch.randint(0, sites[up].d_features, (1,), generator=gen))
            for upstream_node in ((up_pos, up_feature), (up_pos, -1)):
                v_f, v_e = torch.zeros_like(delta[up][0]), torch.zeros_like(delta[up][1])
                p, k = upstream_node
                if k >= 0:
                    v_f[:, p, k] = delta[up][0][:, p, k]
                else:
                    v_e[:, p] = delta[up][1][:, p]
                d_f, d_e = direct_jvp(model, sites, batch, up, down, v_f, v_e)
                g_f, g_e = grads[down]
                expected = [
                    (g_f[:, pos, feature] * d_f[:, pos, feature]).sum(),
                    (g_e[:, pos] * d_e[:, pos]).sum(),
                    (g_f[..., feature] * d_f[..., feature]).sum(),
                ]
                got = [block.error[t][p] if k < 0 else block.features[t][p, k] for t in range(3)]
                for e, g in zip(expected, got):
                    assert float(g) == pytest.approx(float(e), rel=1e-8, abs=1e-12)
                checked += 1
    assert checked == 2 * 12  # 12 site pairs in two layers


def node_jacobian(model, sites, tokens, up: int, down: int, live: set[int]) -> Tensor:
    """∂(nodes of ``down``)/∂(nodes of ``up``) for one example, as a matrix over flattened
    (features, error) coordinates; sites in ``live`` compute as the model does, the others
    (except ``up`` and ``down``) are held at their clean activations."""
    clean = cache(model, tokens)
    f0, e0 = nodes_of(sites[up], clean[sites[up].hook])
    n_f = f0.numel()

    def downstream(z: Tensor) -> Tensor:
        f, e = z[:n_f].reshape(f0.shape), z[n_f:].reshape(e0.shape)
        read: dict[str, Tensor] = {}

        def at_down(x: Tensor) -> Tensor:
            read["x"] = x
            return x

        replace: dict[str, Callable[[Tensor], Tensor]] = {
            s.hook: (lambda h: lambda x: clean[h])(s.hook)
            for i, s in enumerate(sites)
            if i not in (up, down) and i not in live
        }
        replace[sites[up].hook] = lambda x: rebuilt(sites[up], f, e)
        replace[sites[down].hook] = at_down
        hooked(model, tokens, replace)
        f_d, e_d = nodes_of(sites[down], read["x"])
        return torch.cat([f_d.flatten(), e_d.flatten()])

    return torch.autograd.functional.jacobian(downstream, torch.cat([f0.flatten(), e0.flatten()]))


def test_resid_to_resid_is_the_total_minus_the_routes_through_attention_and_mlp(setup):
    """RR − RMR − RAR equals the direct resid→resid term, with both indirect terms non-zero;
    the direct term is also built by hand from the SAE weights (identity skip connection)."""
    model, sites, _, batch = setup
    tokens = batch.clean[:1]
    label = {s.label: i for i, s in enumerate(sites)}
    r0, a1, m1, r1 = label["resid_0"], label["attn_1"], label["mlp_1"], label["resid_1"]
    total = node_jacobian(model, sites, tokens, r0, r1, live={a1, m1})
    ar = node_jacobian(model, sites, tokens, r0, a1, live=set())
    mr = node_jacobian(model, sites, tokens, r0, m1, live=set())  # attention held
    ma = node_jacobian(model, sites, tokens, a1, m1, live=set())
    ra = node_jacobian(model, sites, tokens, a1, r1, live=set())  # MLP held
    rm = node_jacobian(model, sites, tokens, m1, r1, live=set())
    direct = node_jacobian(model, sites, tokens, r0, r1, live=set())
    rmr = rm @ (mr + ma @ ar)
    rar = ra @ ar
    scale = total.abs().max()
    assert rmr.abs().max() > 1e-2 * scale and rar.abs().max() > 1e-2 * scale
    torch.testing.assert_close(total - rmr - rar, direct, rtol=0, atol=1e-10 * float(scale))

    # the direct term by hand: resid_1's input is resid_0's output plus constants
    up, down = sites[r0].sae, sites[r1].sae
    assert up is not None and down is not None
    x = cache(model, tokens)[sites[r1].hook][0]
    on = ((x @ down.W_enc.T + down.b_enc) > 0).double()  # [pos, F]
    n_pos, d = x.shape
    f_up, f_down = up.d_features, down.d_features
    by_hand = torch.zeros(n_pos * (f_down + d), n_pos * (f_up + d), dtype=torch.float64)
    for p in range(n_pos):
        dx = torch.cat([up.W_dec, torch.eye(d, dtype=torch.float64)])  # [(F_up + d), d]
        df = on[p][:, None] * down.W_enc  # [F_down, d]
        de = torch.eye(d, dtype=torch.float64) - down.W_dec.T @ df  # [d, d]
        rows_f = slice(p * f_down, (p + 1) * f_down)
        rows_e = slice(n_pos * f_down + p * d, n_pos * f_down + (p + 1) * d)
        cols = [*range(p * f_up, (p + 1) * f_up),
                *range(n_pos * f_up + p * d, n_pos * f_up + (p + 1) * d)]  # fmt: skip
        by_hand[rows_f, cols] = df @ dx.T
        by_hand[rows_e, cols] = de @ dx.T
    torch.testing.assert_close(direct, by_hand, rtol=1e-10, atol=1e-12)


def test_attribution_patching_is_exact_where_the_path_is_linear(setup):
    """Without norms, logits are linear in the last residual site's nodes, and logit_diff is
    linear in logits: patching one node changes the metric by exactly its linear effect."""
    model, sites, _, batch = setup
    last = len(sites) - 1
    state = batch_state(model, sites, batch, metric, "patching")
    features, errors = attribution_patching(state, last).summed()
    clean_m = float(metric(model.run(batch.clean), batch).sum())
    site = sites[last]
    f_c, e_c = nodes_of(site, cache(model, batch.clean)[site.hook])
    f_p, e_p = nodes_of(site, cache(model, batch.corrupted)[site.hook])
    for pos, feature in [(4, 0), (2, 3), (3, -1), (0, -1)]:
        f, e = f_c.clone(), e_c.clone()
        if feature >= 0:
            f[:, pos, feature] = f_p[:, pos, feature]
        else:
            e[:, pos] = e_p[:, pos]
        patched = hooked(model, batch.clean, {site.hook: lambda x, f=f, e=e: rebuilt(site, f, e)})
        brute = float(metric(patched, batch).sum()) - clean_m
        linear = errors[pos] if feature < 0 else features[pos, feature]
        assert float(linear) == pytest.approx(brute, rel=1e-9, abs=1e-12)


def test_integrated_gradients_approach_patching_the_whole_site(setup):
    """A site's IG node effects sum to m(site patched) − m(clean) as steps grow (left Riemann
    sum: the error shrinks like 1/steps) on a non-linear path (mlp_0, through attention)."""
    model, sites, _, batch = setup
    index = [s.label for s in sites].index("mlp_0")
    state = batch_state(model, sites, batch, metric, "patching")
    site = sites[index]
    f_p, e_p = nodes_of(site, cache(model, batch.corrupted)[site.hook])
    patched = hooked(model, batch.clean, {site.hook: lambda x: rebuilt(site, f_p, e_p)})
    exact = float(metric(patched, batch).sum() - metric(model.run(batch.clean), batch).sum())
    errors = []
    for steps in (1, 4, 16, 64):
        ig = integrated_gradients(model, sites, batch, metric, state, index, steps)
        errors.append(abs(float(ig.features.sum() + ig.error.sum()) - exact))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.02 * abs(exact)
    assert errors[0] > 4 * errors[-1]


def test_a_circuit_graph_holds_kept_nodes_direct_edges_and_the_metric(setup):
    model, sites, task, _ = setup
    settings = CircuitSettings(ig_steps=1, node_threshold=0.02, edge_threshold=1e-4,
                               positions="each")  # fmt: skip
    graph = feature_circuit(model, sites, task, settings, "sfc")
    kinds = set(graph.nodes["kind"])
    assert {"resid_feature", "mlp_feature", "attn_feature", "logits"} <= kinds
    assert (graph.nodes["node_effect"].dropna().abs() >= 0.02).all()
    site_of = {"embed": 0, "attn": 1, "mlp": 2, "resid": 3}  # forward order: 3·layer + site
    order = [
        -1 if k == "logits" else 3 * max(int(layer), 0) + site_of[k.split("_")[0]]
        for k, layer in zip(graph.nodes["kind"], graph.nodes["layer"].fillna(-1).tolist())
    ]
    kinds_by_row = graph.nodes["kind"].tolist()
    metric_row = kinds_by_row.index("logits")
    for s, t, w in zip(graph.edges["source"], graph.edges["target"], graph.edges["weight"]):
        if t == metric_row:
            assert kinds_by_row[s].startswith("resid") and w == graph.nodes.at[s, "node_effect"]
        else:
            assert 0 < order[t] - order[s] <= 3  # consecutive sites only
    resid_edges = [
        (s, t) for s, t in zip(graph.edges["source"], graph.edges["target"])
        if kinds_by_row[s].startswith("resid") and kinds_by_row[t].startswith("resid")
    ]  # fmt: skip
    assert resid_edges  # resid → resid edges exist, and carry the direct term (tested above)


def test_sae_folders_are_checked_before_the_model_runs(tmp_path: Path, setup):
    model = setup[0]
    saes = random_site_saes(model)
    hook = "blocks.0.hook_attn_out"
    write_site_saes(tmp_path / "ok", {hook: saes[hook]})
    sites = build_sites(model, load_saes(tmp_path / "ok"))
    assert [s.label for s in sites if s.sae is not None] == ["attn_0"]
    write_site_saes(tmp_path / "odd", {"blocks.0.hook_q_input": saes[hook]})
    with pytest.raises(DictionaryError, match="not sites of"):
        build_sites(model, load_saes(tmp_path / "odd"))
    narrow = {k: v[:3] if k == "b_dec" else v for k, v in saes[hook].items()}
    write_site_saes(tmp_path / "narrow", {hook: narrow})
    with pytest.raises(DictionaryError, match="b_dec"):
        load_saes(tmp_path / "narrow")
    with pytest.raises(DictionaryError, match="no SAE folders"):
        load_saes(tmp_path)


# --------------------------------------------------------------------------- node vs edge ablation
def test_node_and_edge_ablation_agree_when_every_edge_is_kept_and_bound_the_range(setup):
    from circuit_atlas.ingest.sae_circuits.ablation import CircuitSpec, evaluate, every_node

    model, sites, task, batch = setup
    width = int(batch.clean.shape[1])
    everything = every_node(sites, width)
    full_edges = {
        ((u, un), (d, dn))
        for d in everything
        for u in parents(sites, d)
        for un in everything[u]
        for dn in everything[d]
    }
    full = evaluate(model, sites, [batch], metric, CircuitSpec(everything, full_edges), "patching")
    assert full.faithfulness_node == pytest.approx(1.0, abs=1e-9)
    assert full.faithfulness_edge == pytest.approx(1.0, abs=1e-9)
    assert full.completeness_node == pytest.approx(1.0, abs=1e-9)
    empty = evaluate(model, sites, [batch], metric, CircuitSpec({}, set()), "patching")
    assert empty.faithfulness_node == pytest.approx(0.0, abs=1e-9)
    assert empty.completeness_node == pytest.approx(0.0, abs=1e-9)

    # every error node and two features per site, with every edge among them: the two ablations
    # are one; with fewer edges, only edge ablation changes
    nodes = {i: {(-1, -1), (-1, 0), (-1, 1)} for i in range(len(sites))}
    among = {
        ((u, un), (d, dn))
        for d, dns in nodes.items() for u in parents(sites, d) if u in nodes
        for un in nodes[u] for dn in dns
    }  # fmt: skip
    both = evaluate(model, sites, [batch], metric, CircuitSpec(nodes, among), "patching")
    assert both.faithfulness_edge == pytest.approx(both.faithfulness_node, rel=1e-12)
    fewer = evaluate(model, sites, [batch], metric, CircuitSpec(nodes, set(list(among)[:3])),
                     "patching")  # fmt: skip
    assert fewer.faithfulness_node == pytest.approx(both.faithfulness_node, rel=1e-12)
    assert fewer.faithfulness_edge != pytest.approx(both.faithfulness_edge, rel=1e-6)
    # nodes summed over positions are the same nodes spelled out at every position
    spelled = {i: {(p, f) for p in range(width) for _, f in ns} for i, ns in nodes.items()}
    same = evaluate(model, sites, [batch], metric, CircuitSpec(spelled, set()), "patching")
    assert same.faithfulness_node == pytest.approx(both.faithfulness_node, rel=1e-12)
    assert same.completeness_node == pytest.approx(both.completeness_node, rel=1e-12)
    assert abs(both.completeness_node) > 0 and both.completeness_node != pytest.approx(1.0)


def test_cutting_one_edge_changes_only_what_that_route_carried(setup):
    """Everything live, the one edge resid_0 error → resid_1 feature 1 ablated: the reference
    computes resid_1 from resid_0 with its error patched (attention and MLP of layer 1 seeing the
    clean resid_0), keeps only feature 1 of that, and reads the metric from it."""
    from circuit_atlas.ingest.sae_circuits.ablation import Ablation, ablated_logits, every_node
    from circuit_atlas.ingest.sae_circuits.effects import patch_values, site_values

    model, sites, _, batch = setup
    label = {s.label: i for i, s in enumerate(sites)}
    r0, r1 = label["resid_0"], label["resid_1"]
    width = int(batch.clean.shape[1])
    clean_nodes = site_values(model, sites, batch.clean)
    ablated = patch_values(model, sites, batch, clean_nodes, "patching")
    cut = {(r1, (-1, 1)): {(r0, (-1, -1))}}
    got = metric(
        ablated_logits(model, sites, batch, ablated, Ablation(every_node(sites, width), cut)), batch
    )
    inverted = Ablation({}, cut, inverted=True)  # "nothing ablated", as the complements say it
    torch.testing.assert_close(
        metric(ablated_logits(model, sites, batch, ablated, inverted), batch), got, rtol=0, atol=0
    )

    clean = cache(model, batch.clean)
    f0, e0 = nodes_of(sites[r0], clean[sites[r0].hook])
    e_patched = nodes_of(sites[r0], cache(model, batch.corrupted)[sites[r0].hook])[1]
    read: dict[str, Tensor] = {}
    a1, m1 = sites[label["attn_1"]].hook, sites[label["mlp_1"]].hook

    def keep(x: Tensor) -> Tensor:
        read["x"] = x
        return x

    hooked(model, batch.clean, {sites[r0].hook: lambda x: rebuilt(sites[r0], f0, e_patched),
                                a1: lambda x: clean[a1], m1: lambda x: clean[m1],
                                sites[r1].hook: keep})  # fmt: skip
    f_cut, _ = nodes_of(sites[r1], read["x"])
    f1, e1 = nodes_of(sites[r1], clean[sites[r1].hook])
    f1 = f1.clone()
    f1[..., 1] = f_cut[..., 1]
    rebuilt_r1: dict[str, Callable[[Tensor], Tensor]] = {
        sites[r1].hook: lambda x: rebuilt(sites[r1], f1, e1)
    }
    expected = metric(hooked(model, batch.clean, rebuilt_r1), batch)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(got, metric(model.run(batch.clean), batch))


# ------------------------------------------------------------------- functional connectivity
def test_per_example_values_add_up_and_feed_functional_rois(setup):
    """Each kept node's per-example effects sum to its node effect; its per-example activations
    are its clean activation summed over positions; the functional affinity is the positive
    part of their correlation; decoder directions come from the SAE for the decoder cosine."""
    import numpy as np

    from circuit_atlas.analysis.roi.affinity import functional_affinity
    from circuit_atlas.analysis.roi.detect import detect
    from circuit_atlas.analysis.roi.stored import node_decoders

    model, sites, task, batch = setup
    settings = CircuitSettings(ig_steps=2, node_threshold=0.02, edge_threshold=1e-3, curve=False)
    graph = feature_circuit(model, sites, task, settings, "functional")
    nodes = graph.nodes[graph.nodes["kind"] != "logits"]
    for effect, examples in zip(nodes["node_effect"], nodes["example_effects"]):
        assert len(examples) == len(task.examples)
        assert sum(examples) == pytest.approx(effect, rel=1e-9, abs=1e-12)
    label = {s.label: i for i, s in enumerate(sites)}
    row = next(i for i, k in enumerate(nodes["kind"]) if k == "mlp_feature")
    node = nodes.iloc[row]
    layer, feature = int(node["layer"]), int(node["feature"])
    site = sites[label[f"mlp_{layer}"]]
    f, _ = nodes_of(site, cache(model, batch.clean)[site.hook])
    assert node["example_activations"] == pytest.approx(f[..., feature].sum(1).tolist(), rel=1e-12)
    assert node["decoder"] == pytest.approx(site.sae.W_dec[feature].tolist(), rel=1e-15)

    affinity = functional_affinity(graph, "activation-correlation")
    values = np.array([nodes["example_activations"].iloc[i] for i in range(len(nodes))])
    expected = np.clip(np.nan_to_num(np.corrcoef(values)), 0, None)
    np.fill_diagonal(expected, 0)
    assert np.allclose(affinity.matrix.toarray(), expected, atol=1e-12)
    decoders = node_decoders(graph)
    assert decoders is not None and decoders.vectors.shape[1] == model.d_model
    result = detect(affinity, "leiden", decoders=decoders)
    assert result.decoder is not None and result.n_rois >= 1


# ------------------------------------------------------------------- padding
@pytest.mark.parametrize("positions", ["sum", "each"])
def test_an_example_gives_the_same_values_in_any_batch(setup, positions):
    """Right padding: a short example batched with a long one records the same per-example
    activations and effects as alone, and per-position nodes past its end do not crash."""
    model, sites, _, _ = setup
    long_task = random_task(2, seed=5, lengths=(8, 9))
    short = random_task(2, seed=6, lengths=(4, 6))
    mixed = Task("mixed", [*long_task.examples, *short.examples], "logit_diff")
    alone = Task("alone", short.examples, "logit_diff")
    settings = CircuitSettings(ig_steps=1, node_threshold=0.0, edge_threshold=0.0, curve=False,
                               positions=positions, batch_size=4)  # fmt: skip
    together = feature_circuit(model, sites, mixed, settings, "mixed")  # one batch, padded to 8+
    single = feature_circuit(model, sites, alone, replace(settings, batch_size=1), "alone")
    if positions == "each":  # more positions: nodes past the short ends
        assert len(together.nodes) > len(single.nodes)
    key = [k.encode() for k in single.keys()]
    by_key = dict(zip([k.encode() for k in together.keys()], together.nodes["example_activations"]))
    for k, values in zip(key, single.nodes["example_activations"]):
        if not isinstance(values, list):
            continue  # the metric node
        assert by_key[k][2:] == pytest.approx(values, rel=1e-9, abs=1e-12), k


def test_per_position_nodes_beyond_a_narrower_batch_have_no_edges_there(setup):
    """Batches of different widths: a node at a position only the wide batch reaches gets its
    edges from that batch, and the narrow batch adds nothing (it used to index past its end)."""
    model, sites, _, _ = setup
    examples = [*random_task(2, seed=5, lengths=(8, 9)).examples,
                *random_task(2, seed=6, lengths=(4, 5)).examples]  # fmt: skip
    settings = CircuitSettings(ig_steps=1, node_threshold=0.0, edge_threshold=0.0, curve=False,
                               positions="each", batch_size=2)  # fmt: skip
    graph = feature_circuit(model, sites, Task("widths", examples, "logit_diff"), settings, "w")
    wide = graph.nodes["pos"].dropna().astype(int)
    assert wide.max() == 7 and graph.n_edges > 0
