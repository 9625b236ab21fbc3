"""The three things every method does to a hooked model, as hook sets for one forward pass.

- :func:`record_outputs`: every node's output into ``[batch, pos, n_forward, d_model]``;
- :class:`GradientPass`: gradients of the metric with respect to every node *input*, summed into
  ``[batch, pos, n_backward, d_model]`` (optionally with interpolated inputs or outputs);
- :func:`patched_logits` / :func:`patched_metric`: a forward pass in which chosen edges carry
  the counterfactual: the input of node ``k`` becomes ``x_k + Σ_f patch[f, k] · (cf_f − a_f)``,
  with ``a_f`` the output of ``f`` *in this same pass*, so patching an edge changes exactly that
  edge and everything downstream of it recomputes (EAP-IG's ``evaluate_graph`` construction).

Scores are ``Σ_{batch,pos,d} (cf_f − clean_f) · ∂m/∂x_k`` for every edge ``(f, k)``; the gradient
sums are contracted with the activation difference once per batch, not once per IG step, which
is what keeps ``eap-ig-inputs`` close to the cost of its bare forward/backward passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from circuit_atlas.ingest.attribution.component_graph import CHANNELS, ComponentGraph
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.attribution.tasks import Batch

# Where a node's output lives in the activation tensor's last axis: one index or a range.
Slot = int | slice

Hook = tuple[str, Callable[..., Any]]


def _output_hooks(
    model: LoadedModel, graph: ComponentGraph, write: Callable[[Slot, torch.Tensor], None]
) -> list[Hook]:
    """Forward hooks handing each node output to ``write(slot, value)``."""

    def at(slot: Slot) -> Callable[..., None]:
        def hook(value: torch.Tensor, hook: object) -> None:
            write(slot, value)

        return hook

    hooks: list[Hook] = [(model.input_output_hook(), at(0))]
    hooks += [(name, at(slot)) for name, slot in sublayer_outputs(model, graph)]
    return hooks


def sublayer_outputs(model: LoadedModel, graph: ComponentGraph) -> list[tuple[str, Slot]]:
    """Each attention layer's head outputs and each MLP's output, with their forward slots, in
    order (the input node, slot 0, is not among them)."""
    outputs: list[tuple[str, Slot]] = []
    for layer in range(graph.n_layers):
        outputs.append((model.head_outputs_hook(layer), graph.head_forward_slots(layer)))
        if graph.has_mlps:
            outputs.append((model.mlp_output_hook(layer), graph.mlp_forward_slot(layer)))
    return outputs


def input_hook_names(model: LoadedModel, graph: ComponentGraph) -> list[tuple[str, Slot]]:
    """Every node-input hook with its backward slot(s), in topological order."""
    names: list[tuple[str, Slot]] = []
    for layer in range(graph.n_layers):
        for channel in CHANNELS:
            names.append(
                (model.head_inputs_hook(layer, channel), graph.head_backward_slots(layer, channel))
            )
        if graph.has_mlps:
            names.append((model.mlp_input_hook(layer), graph.mlp_backward_slot(layer)))
    names.append((model.logits_input_hook(), graph.logits_backward_slot))
    return names


def work_dtype(model: LoadedModel) -> torch.dtype:
    """Activations and gradients are kept in float32 (float64 for float64 models, in tests)."""
    return torch.float64 if model.dtype == torch.float64 else torch.float32


def new_activations(graph: ComponentGraph, batch: Batch, model: LoadedModel) -> torch.Tensor:
    shape = (batch.size, batch.clean.shape[1], graph.n_forward, model.d_model)
    return torch.zeros(shape, device=model.device, dtype=work_dtype(model))


@torch.no_grad()
def record_outputs(
    model: LoadedModel, graph: ComponentGraph, tokens: torch.Tensor, batch: Batch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every node's output on ``tokens`` (float32) and the logits."""
    outputs = new_activations(graph, batch, model)

    def write(slot: Slot, value: torch.Tensor) -> None:
        outputs[:, :, slot] = value

    logits = model.run(tokens, hooks=_output_hooks(model, graph, write))
    return outputs, logits


class GradientPass:
    """Sums ∂m/∂(every node input) over forward/backward passes of one batch."""

    def __init__(self, model: LoadedModel, graph: ComponentGraph, batch: Batch) -> None:
        self.model, self.graph, self.batch = model, graph, batch
        shape = (batch.size, batch.clean.shape[1], graph.n_backward, model.d_model)
        self.gradients = torch.zeros(shape, device=model.device, dtype=work_dtype(model))
        self.passes = 0

    def run(
        self,
        metric: Callable[[torch.Tensor], torch.Tensor],
        tokens: torch.Tensor,
        input_value: torch.Tensor | None = None,
        output_values: torch.Tensor | None = None,
        record_into: torch.Tensor | None = None,
        weight: float = 1.0,
        replace: tuple[str, torch.Tensor] | None = None,
        mix: tuple[torch.Tensor, float] | None = None,
    ) -> torch.Tensor:
        """One forward + backward; adds ``weight · ∂m/∂x_k``. Returns the per-example metric.

        ``input_value`` replaces the embeddings (IG on inputs); ``output_values`` shifts every
        node output to the given value while keeping its local gradient (``clean-corrupted``);
        ``replace`` = (hook name, value) sets one sublayer's output to a constant, so no
        gradient flows through that sublayer (``eap-ig-activations``); ``mix`` = (targets, α)
        moves every head and MLP output ``o`` to ``o + α (target − o)``, gradient kept
        (``eap-ig-partial-activations``); ``record_into`` receives each node's own output in
        this pass, before any ``mix``.
        """
        model, graph = self.model, self.graph
        dtype = model.dtype

        def leaf_input(value: torch.Tensor, hook: object) -> torch.Tensor:
            new = value.detach() if input_value is None else input_value.to(dtype)
            return new.clone().requires_grad_(True)

        hooks: list[Hook] = [(model.input_output_hook(), leaf_input)]
        if record_into is not None:

            def write(slot: Slot, value: torch.Tensor) -> None:
                record_into[:, :, slot] = value.detach()

            hooks += _output_hooks(model, graph, write)
        if output_values is not None:
            hooks += self._shift_hooks(output_values)
        if mix is not None:
            hooks += self._mix_hooks(*mix)
        if replace is not None:
            name, constant = replace
            hooks.append((name, lambda value, hook: constant.to(value.dtype)))
        backward = [
            (name, self._accumulate(slot, weight)) for name, slot in input_hook_names(model, graph)
        ]
        with torch.enable_grad(), model.model.hooks(fwd_hooks=hooks, bwd_hooks=backward):
            logits = model.model(tokens, return_type="logits")
            values = metric(logits)
            values.sum().backward()
        self.passes += 1
        return values.detach()

    def _accumulate(self, slot: Slot, weight: float) -> Callable[..., None]:
        def hook(grad: torch.Tensor, hook: object) -> None:
            self.gradients[:, :, slot] += weight * grad

        return hook

    def _mix_hooks(self, targets: torch.Tensor, alpha: float) -> list[Hook]:
        def mix(slot: Slot) -> Callable[..., torch.Tensor]:
            def hook(value: torch.Tensor, hook: object) -> torch.Tensor:
                return value + alpha * (targets[:, :, slot].to(value.dtype) - value)

            return hook

        return [(name, mix(slot)) for name, slot in sublayer_outputs(self.model, self.graph)]

    def _shift_hooks(self, targets: torch.Tensor) -> list[Hook]:
        def shift(slot: Slot) -> Callable[..., torch.Tensor]:
            def hook(value: torch.Tensor, hook: object) -> torch.Tensor:
                target = targets[:, :, slot].to(value.dtype)
                return value + (target - value).detach()

            return hook

        return [(name, shift(slot)) for name, slot in sublayer_outputs(self.model, self.graph)]

    def contract(
        self, difference: torch.Tensor, scores: torch.Tensor, neurons: torch.Tensor | None = None
    ) -> None:
        """``scores[f, k] += Σ difference[.., f, :] · gradients[.., k, :]`` over real edges.

        One contraction per block of backward slots sharing an upstream prefix, so non-edges
        cost nothing. ``neurons`` (``[n_forward, d_model]``), if given, receives each node's
        score per output dimension, EAP-IG's "neurons": ``Σ difference[.., f, d] · ∂m/∂o_f[d]``,
        where the gradient at a node's output is the sum of the gradients at every input it
        feeds (each input is its own copy of the residual stream), a suffix of the backward
        slots since they are in topological order.
        """
        if neurons is not None:
            suffix = self.gradients.flip(2).cumsum(2).flip(2)  # Σ_{k' ≥ k} gradients[.., k']
            first = torch.searchsorted(
                torch.as_tensor(self.graph.upstream, device=suffix.device),
                torch.arange(self.graph.n_forward, device=suffix.device),
                right=True,
            )  # the first backward slot each forward slot feeds
            output_gradients = suffix[:, :, first]
            neurons += torch.einsum("bpfd,bpfd->fd", difference, output_gradients).to(neurons.dtype)
        upstream = self.graph.upstream
        start = 0
        while start < len(upstream):
            stop = start
            while stop < len(upstream) and upstream[stop] == upstream[start]:
                stop += 1
            width = int(upstream[start])
            block = torch.einsum(
                "bpfd,bpkd->fk", difference[:, :, :width], self.gradients[:, :, start:stop]
            )
            scores[:width, start:stop] += block.to(scores.dtype)
            start = stop


@torch.no_grad()
def patched_metric(
    model: LoadedModel,
    graph: ComponentGraph,
    batch: Batch,
    counterfactual: torch.Tensor,
    patch: torch.Tensor,
    metric: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Per-example metric of :func:`patched_logits`."""
    return metric(patched_logits(model, graph, batch, counterfactual, patch)).detach()


@torch.no_grad()
def patched_logits(
    model: LoadedModel,
    graph: ComponentGraph,
    batch: Batch,
    counterfactual: torch.Tensor,
    patch: torch.Tensor,
) -> torch.Tensor:
    """Logits on the clean prompts with the edges where ``patch`` is True patched.

    ``patch`` is ``[n_forward, n_backward]`` (bool); ``counterfactual`` the ``[batch, pos,
    n_forward, d]`` outputs the patched edges carry instead.
    """
    current = new_activations(graph, batch, model)
    weights = patch.to(device=model.device, dtype=work_dtype(model))

    def write(slot: Slot, value: torch.Tensor) -> None:
        current[:, :, slot] = value

    def add_delta(slot: Slot) -> Callable[..., torch.Tensor]:
        columns = weights[:, slot]
        width = int(graph.upstream[slot.start if isinstance(slot, slice) else slot])
        if not bool(columns[:width].any()):
            return lambda value, hook: value
        columns = columns[:width]

        def hook(value: torch.Tensor, hook: object) -> torch.Tensor:
            delta = counterfactual[:, :, :width] - current[:, :, :width]
            if columns.dim() == 2:  # one column per head: [f, h]
                change = torch.einsum("bpfd,fh->bphd", delta, columns)
            else:
                change = torch.einsum("bpfd,f->bpd", delta, columns)
            return value + change.to(value.dtype)

        return hook

    hooks = _output_hooks(model, graph, write)
    hooks += [(name, add_delta(slot)) for name, slot in input_hook_names(model, graph)]
    return model.run(batch.clean, hooks=hooks)
