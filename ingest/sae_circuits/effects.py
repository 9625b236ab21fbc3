"""Node effects and edge effects of a feature circuit, by attribution patching or integrated
gradients, over clean/corrupted pairs (Marks et al., 2024, §2).

For a node ``n`` with clean value ``n_c`` and patched value ``n_p`` (its value on the corrupted
prompt, or zero, or its mean), and ``m`` the metric on the clean prompt:

* **attribution patching** (linear): ``IE(n) = ∂m/∂n · (n_p − n_c)``, the gradient taken on the
  clean run with every other node live (a feature moves, its site's error stays);
* **integrated gradients** (``ig_steps``): one site at a time, its nodes set to
  ``n_c + α (n_p − n_c)`` for ``α = k / steps``, ``k = 0 … steps − 1`` (the left Riemann sum,
  as feature-circuits does), everything downstream live; ``IE(n)`` is the mean gradient times
  ``n_p − n_c``. The effects of one site's nodes sum to ``m(site patched) − m(clean)`` as the
  steps grow;
* an **edge** ``u → d`` between a site and one of its direct children (:func:`.sites.parents`):
  ``∂m/∂d · (∂d/∂u)_direct · (u_p − u_c)``, where ``(∂d/∂u)_direct`` is taken with every other
  site held at its clean value, so only the direct route counts. Routes through intermediate
  sites are products of such edges: the total effect of ``resid_{l−1}`` on ``resid_l`` is the
  direct (identity) route plus the routes through ``attn_l`` (RAR) and through ``mlp_l``
  (RMR, attention first or not), and the direct route is what a resid → resid edge carries
  (``tests/unit/test_sae_circuits.py`` checks RR − RMR − RAR against it, with both indirect
  terms non-zero).

Effects are per example; :class:`Effects` sums them over examples. An error node is a vector:
its effect is the dot product over ``d_model``. Positions are kept (``[pos, …]``) and summed
over later if the circuit's nodes are position-free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.attribution.tasks import Batch
from circuit_atlas.ingest.sae_circuits.sites import Site, parents
from circuit_atlas.ingest.sae_circuits.spliced import Fixed, Held, Nodes, Tap, run_spliced

MetricFn = Callable[[torch.Tensor, Batch], torch.Tensor]  # logits, batch → [batch]
PATCHES = ("patching", "zero", "mean")  # the corrupted prompt's values, zeros, or means


@dataclass
class SiteEffects:
    """One site's node effects, per example."""

    features: torch.Tensor  # [batch, pos, d_features]
    error: torch.Tensor  # [batch, pos]

    def summed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``[pos, d_features]`` and ``[pos]``: summed over the batch's examples."""
        return self.features.sum(0), self.error.sum(0)


@dataclass
class BatchState:
    """What the effects of one batch need: node values on both prompts and the gradients."""

    clean: list[Nodes]
    patch: list[Nodes]
    grads: list[Nodes]  # ∂m/∂node on the clean run, every other node live

    def delta(self, index: int) -> Nodes:
        return self.patch[index].minus(self.clean[index])


def site_values(model: LoadedModel, sites: list[Site], tokens: torch.Tensor) -> list[Nodes]:
    with torch.no_grad():
        _, recorded = run_spliced(model, sites, tokens)
    return [recorded[i].detached() for i in range(len(sites))]


def patch_values(
    model: LoadedModel, sites: list[Site], batch: Batch, clean: list[Nodes], patch: str
) -> list[Nodes]:
    """Each site's patched node values: the corrupted prompt's (``patching``), zeros, or the
    clean values' mean over the batch's real positions (broadcast to every position)."""
    if patch == "patching":
        return site_values(model, sites, batch.corrupted)
    if patch == "zero":
        return [Nodes(torch.zeros_like(n.features), torch.zeros_like(n.error)) for n in clean]
    if patch == "mean":
        valid = batch.valid.to(clean[0].error.device)[..., None].to(clean[0].error.dtype)
        count = valid.sum()

        def mean(t: torch.Tensor) -> torch.Tensor:
            return ((t * valid).sum((0, 1)) / count).expand_as(t).clone()

        return [Nodes(mean(n.features), mean(n.error)) for n in clean]
    raise ValueError(f"unknown patch {patch!r}: choose one of {', '.join(PATCHES)}")


def clean_gradients(
    model: LoadedModel, sites: list[Site], batch: Batch, metric: MetricFn, clean: list[Nodes]
) -> list[Nodes]:
    """``∂m/∂node`` for every node on the clean run (taps at every site)."""
    taps = {i: Tap.zeros_like(nodes) for i, nodes in enumerate(clean)}
    logits, _ = run_spliced(model, sites, batch.clean, taps)
    total = metric(logits, batch).sum()
    leaves = [t for i in range(len(sites)) for t in (taps[i].features, taps[i].error)]
    grads = torch.autograd.grad(total, leaves, allow_unused=True)
    out = []
    for i in range(len(sites)):
        g_f, g_e = grads[2 * i], grads[2 * i + 1]
        out.append(
            Nodes(
                torch.zeros_like(clean[i].features) if g_f is None else g_f,
                torch.zeros_like(clean[i].error) if g_e is None else g_e,
            )
        )
    return out


def batch_state(
    model: LoadedModel, sites: list[Site], batch: Batch, metric: MetricFn, patch: str
) -> BatchState:
    clean = site_values(model, sites, batch.clean)
    return BatchState(
        clean,
        patch_values(model, sites, batch, clean, patch),
        clean_gradients(model, sites, batch, metric, clean),
    )


def attribution_patching(state: BatchState, index: int) -> SiteEffects:
    """Linear node effects of site ``index``, per example."""
    grad, delta = state.grads[index], state.delta(index)
    return SiteEffects(grad.features * delta.features, (grad.error * delta.error).sum(2))


def integrated_gradients(
    model: LoadedModel,
    sites: list[Site],
    batch: Batch,
    metric: MetricFn,
    state: BatchState,
    index: int,
    steps: int,
) -> SiteEffects:
    """Node effects of site ``index`` by integrated gradients along clean → patch."""
    if steps < 1:
        raise ValueError(f"ig_steps must be at least 1, got {steps}")
    total_f = torch.zeros_like(state.clean[index].features)
    total_e = torch.zeros_like(state.clean[index].error)
    for k in range(steps):
        point = state.clean[index].lerp(state.patch[index], k / steps).leaves()
        logits, _ = run_spliced(model, sites, batch.clean, {index: Fixed(point)})
        g_f, g_e = torch.autograd.grad(
            metric(logits, batch).sum(), [point.features, point.error], allow_unused=True
        )
        if g_f is not None:
            total_f += g_f
        if g_e is not None:
            total_e += g_e
    delta = state.delta(index)
    return SiteEffects(total_f / steps * delta.features, (total_e / steps * delta.error).sum(2))


@dataclass
class EdgeBlock:
    """Edges from every node of site ``upstream`` into the chosen nodes of site ``downstream``,
    summed over the batch. ``targets`` lists the downstream nodes as ``(pos, feature)`` with
    ``feature = -1`` for the error node (``pos = -1``: the node summed over positions);
    ``features[t]`` is ``[pos, d_features]`` of the upstream site, ``error[t]`` is ``[pos]``."""

    upstream: int
    downstream: int
    targets: list[tuple[int, int]]
    features: list[torch.Tensor]
    error: list[torch.Tensor]


def direct_graph(
    model: LoadedModel, sites: list[Site], batch: Batch, state: BatchState, upstream: int
) -> tuple[Nodes, dict[int, Nodes]]:
    """A clean forward in which ``upstream``'s nodes are variables and every other site is
    *held* (its nodes read, its output clean): each child's nodes, as functions of the
    variables, see only the direct route (a child never passes an effect on to a later child,
    e.g. attention to the MLP, in this pass)."""
    children = [i for i in range(len(sites)) if upstream in parents(sites, i)]
    variable = state.clean[upstream].leaves()
    controls: dict[int, Fixed | Held] = {
        i: Held(state.clean[i]) for i in range(len(sites)) if i != upstream
    }
    controls[upstream] = Fixed(variable)
    _, recorded = run_spliced(model, sites, batch.clean, controls)
    return variable, {i: recorded[i] for i in children}


def edge_blocks(
    model: LoadedModel,
    sites: list[Site],
    batch: Batch,
    state: BatchState,
    upstream: int,
    targets: dict[int, list[tuple[int, int]]],
) -> Iterator[EdgeBlock]:
    """Edges from site ``upstream`` into each child's ``targets`` (``(pos, feature)``, see
    :class:`EdgeBlock`), one backward pass per downstream node."""
    variable, children = direct_graph(model, sites, batch, state, upstream)
    delta = state.delta(upstream)
    for child, nodes in children.items():
        chosen = targets.get(child, [])
        block = EdgeBlock(upstream, child, [], [], [])
        grad = state.grads[child]
        for pos, feature in chosen:
            block.targets.append((pos, feature))
            if pos >= grad.error.shape[1]:  # a position this batch's prompts do not reach
                block.features.append(torch.zeros_like(delta.features[0]))
                block.error.append(torch.zeros_like(delta.error[0, :, 0]))
                continue
            if feature >= 0:
                picked = grad.features[..., feature] * nodes.features[..., feature]
            else:
                picked = (grad.error * nodes.error).sum(-1)
            scalar = picked.sum() if pos < 0 else picked[:, pos].sum()
            g_f, g_e = torch.autograd.grad(
                scalar, [variable.features, variable.error], retain_graph=True, allow_unused=True
            )
            block.features.append(
                torch.zeros_like(delta.features[0])
                if g_f is None
                else (g_f * delta.features).sum(0)
            )
            block.error.append(
                torch.zeros_like(delta.error[0, :, 0])
                if g_e is None
                else (g_e * delta.error).sum((0, 2))
            )
        yield block
