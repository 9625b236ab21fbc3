"""Feature-level attribution graphs: direct effects in the frozen replacement model.

The method of circuit-tracer (Ameisen et al., 2025, "Circuit Tracing"), with its conventions
(``docs/feature_graphs.md``; each checked against circuit-tracer 0.5.0's source):

* each MLP is replaced by its transcoder: the MLP output at (layer, position) is the sum of the
  active features' decoder vectors ``a · W_dec[f]``, ``b_dec``, the optional skip term and an
  *error node* (MLP output − reconstruction), which makes the replacement exact on the prompt.
  A cross-layer transcoder's feature writes into its own layer's output and every later one's,
  so its edge to a target sums those writes' direct effects;
* attention patterns and every norm's scale (LayerNorm/RMSNorm denominators, ``ln_final``'s too)
  are frozen at their values on the prompt, and the MLP outputs are constants, so every target
  is a linear function of the sources: token embeddings ``W_E[token]``, feature writes and error
  vectors. Biases and positional embeddings are constants, not nodes;
* an edge ``A[target, source]`` is the source's direct effect on the target: on a feature's
  *pre-activation* ``W_enc[f] · x_in``, or on a logit *demeaned* over the vocabulary
  (``(W_U[:, t] − mean_v W_U[:, v]) · ln_final(x)`` at the last position);
* position 0 (a BOS token) carries no features and its error nodes are zero;
* logits: the real model's most probable tokens until their probability reaches
  ``desired_logit_prob`` (0.95), at most ``max_n_logits`` (10), or the given targets;
* ``max_feature_nodes``: which features get rows is chosen by influence on the logits, computed
  on the rows so far, as circuit-tracer does.

Rows are computed in batches: one forward over ``batch_size`` copies of the prompt, one backward
from the sum of each copy's own target, so each copy's gradient is one target's row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from circuit_atlas.errors import DictionaryError, ModelLoadError
from circuit_atlas.graph import CircuitGraph, GraphMetadata
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.features.dictionaries import DictionarySet
from circuit_atlas.ingest.features.graph_layout import graph_from_adjacency

DEFAULT_BATCH = 64
UPDATE_INTERVAL = 4  # circuit-tracer: re-rank features by influence every 4 batches
ZERO_POSITIONS = 1  # position 0 (BOS) carries no features and no error


@dataclass(frozen=True)
class PromptState:
    """What one no-grad forward of the real model gives: the replacement's fixed parts."""

    tokens: torch.Tensor  # [n_pos]
    logits: torch.Tensor  # [d_vocab], last position, real model
    inputs: list[torch.Tensor]  # per layer, [n_pos, d_in] at the transcoder input hook
    activations: list[torch.Tensor]  # per layer, [n_pos, d_features], position 0 zeroed
    errors: list[torch.Tensor]  # per layer, [n_pos, d_model], position 0 zeroed
    active: torch.Tensor  # [n_active, 3] (layer, pos, feature), sorted
    active_values: torch.Tensor  # [n_active]


@dataclass(frozen=True)
class LogitChoice:
    token_ids: list[int]
    probabilities: list[float]


def prompt_state(
    model: LoadedModel, dictionaries: DictionarySet, tokens: torch.Tensor
) -> PromptState:
    """Run the real model once and decompose every MLP output into features and error."""
    n_layers = dictionaries.n_layers
    inputs: list[Any] = [None] * n_layers
    outputs: list[Any] = [None] * n_layers

    def keep(store: list[Any], layer: int) -> Callable[[torch.Tensor, Any], None]:
        def hook(value: torch.Tensor, hook: Any) -> None:
            store[layer] = value[0].detach()

        return hook

    hooks = []
    for d in dictionaries.layers:
        hooks.append((d.input_hook, keep(inputs, d.layer)))
        hooks.append((d.output_hook, keep(outputs, d.layer)))
    with torch.no_grad():
        logits = model.run(tokens[None], hooks=hooks)[0, -1]
    activations = []
    for d in dictionaries.layers:
        acts = d.encode(inputs[d.layer])
        acts[:ZERO_POSITIONS] = 0
        activations.append(acts)
    errors = [
        output - reconstruction
        for output, reconstruction in zip(outputs, dictionaries.reconstruct(activations, inputs))
    ]
    active, values = [], []
    for d, acts, error in zip(dictionaries.layers, activations, errors):
        error[:ZERO_POSITIONS] = 0
        pos, feat = torch.nonzero(acts, as_tuple=True)
        active.append(torch.stack([torch.full_like(pos, d.layer), pos, feat], dim=1))
        values.append(acts[pos, feat])
    return PromptState(
        tokens=tokens,
        logits=logits,
        inputs=inputs,
        activations=activations,
        errors=errors,
        active=torch.cat(active) if active else torch.zeros(0, 3, dtype=torch.long),
        active_values=torch.cat(values) if values else torch.zeros(0),
    )


def choose_logits(
    logits: torch.Tensor,
    max_n_logits: int = 10,
    desired_logit_prob: float = 0.95,
    targets: Sequence[int] | None = None,
) -> LogitChoice:
    """circuit-tracer's salient logits: the fewest top tokens whose probability reaches
    ``desired_logit_prob``, at most ``max_n_logits``; or the given ``targets``. Probabilities
    are the real model's softmax at the last position (not renormalised)."""
    probs = torch.softmax(logits.to(torch.float64), dim=-1)
    if targets is not None:
        ids = [int(t) for t in targets]
        bad = [t for t in ids if not 0 <= t < probs.numel()]
        if bad or not ids:
            raise ModelLoadError(f"logit targets {bad or ids} are not token ids of this model")
        return LogitChoice(ids, [float(probs[t]) for t in ids])
    k = min(max_n_logits, probs.numel())
    top_p, top_ids = torch.topk(probs, k)
    cutoff = int(torch.searchsorted(torch.cumsum(top_p, 0), torch.tensor(desired_logit_prob)))
    keep = min(cutoff + 1, k)
    return LogitChoice(top_ids[:keep].tolist(), top_p[:keep].tolist())


class FrozenReplacement:
    """The frozen linear replacement model of one prompt, run on ``batch`` copies at a time.

    :meth:`rows` returns, for each target of a batch, its direct-effect row over every source
    (features, errors, tokens): one forward and one backward per batch.
    """

    def __init__(self, model: LoadedModel, dictionaries: DictionarySet, state: PromptState):
        self.model = model
        self.dictionaries = dictionaries
        self.state = state
        self.n_pos = int(state.tokens.numel())
        W_U = model.model.W_U.detach()  # [d_model, d_vocab]
        self.unembed_mean = W_U.mean(dim=1)
        self.W_U = W_U
        self.W_E = model.model.W_E.detach()
        # sources, in the graph's column order after the features: errors, then tokens
        self.active = state.active
        self._decoder_writes = self._feature_writes()
        self.backward_passes = 0

    def _feature_writes(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per output layer: (column indices, positions, a · decoder rows) of the active
        features that write into it: its own, and a cross-layer transcoder's earlier layers'.
        Within one layer each column appears once."""
        parts: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [
            [] for _ in self.dictionaries.layers
        ]
        for d in self.dictionaries.layers:
            mask = self.active[:, 0] == d.layer
            columns = torch.nonzero(mask, as_tuple=True)[0]
            pos, feat = self.active[mask, 1], self.active[mask, 2]
            acts = self.state.activations[d.layer][pos, feat]
            for target in d.output_layers:
                parts[target].append((columns, pos, acts[:, None] * d.decoder_to(target)[feat]))
        return [
            (
                torch.cat([c for c, _, _ in layer_parts]),
                torch.cat([p for _, p, _ in layer_parts]),
                torch.cat([w for _, _, w in layer_parts]),
            )
            for layer_parts in parts
        ]

    @property
    def n_sources(self) -> int:
        return len(self.active) + (self.dictionaries.n_layers + 1) * self.n_pos

    def rows(self, targets: Sequence[tuple[str, int, int, int]]) -> torch.Tensor:
        """Direct-effect rows ``[len(targets), n_sources]`` for targets ``("feature", layer,
        pos, index)`` or ``("logit", -1, pos, token_id)``."""
        batch = len(targets)
        tokens = self.state.tokens[None].expand(batch, -1)
        dtype = self.model.dtype
        n_pos, d_model = self.n_pos, self.model.d_model
        deltas = [
            torch.zeros(
                batch, n_pos, d_model, dtype=dtype, device=self.model.device, requires_grad=True
            )
            for _ in range(self.dictionaries.n_layers)
        ]
        embed_delta = torch.zeros(
            batch, n_pos, d_model, dtype=dtype, device=self.model.device, requires_grad=True
        )
        live_inputs: list[Any] = [None] * self.dictionaries.n_layers
        final: dict[str, torch.Tensor] = {}

        def freeze(value: torch.Tensor, hook: Any) -> torch.Tensor:
            return value.detach()

        def embed(value: torch.Tensor, hook: Any) -> torch.Tensor:
            return value.detach() + embed_delta

        def read_input(layer: int) -> Callable[[torch.Tensor, Any], None]:
            def hook(value: torch.Tensor, hook: Any) -> None:
                live_inputs[layer] = value

            return hook

        def write_output(layer: int) -> Callable[[torch.Tensor, Any], torch.Tensor]:
            d = self.dictionaries.layers[layer]

            def hook(value: torch.Tensor, hook: Any) -> torch.Tensor:
                if d.W_skip is None:
                    return value.detach() + deltas[layer]
                skip = live_inputs[layer] @ d.W_skip.T
                return skip + (value - skip).detach() + deltas[layer]

            return hook

        def final_norm(value: torch.Tensor, hook: Any) -> None:
            final["normalized"] = value

        hooks: list[tuple[Any, Any]] = [
            (lambda name: name.endswith("hook_pattern") or name.endswith("hook_scale"), freeze),
            ("hook_embed", embed),
            ("ln_final.hook_normalized", final_norm),
        ]
        for d in self.dictionaries.layers:
            hooks.append((d.input_hook, read_input(d.layer)))
            hooks.append((d.output_hook, write_output(d.layer)))
        with torch.enable_grad():
            self.model.run(tokens, hooks=hooks)
            total = torch.zeros((), dtype=dtype, device=self.model.device)
            for b, (kind, layer, pos, index) in enumerate(targets):
                if kind == "feature":
                    encoder = self.dictionaries.layers[layer].W_enc[index]
                    total = total + live_inputs[layer][b, pos] @ encoder
                else:
                    out = self._final_output(final["normalized"][b, pos])
                    total = total + out @ (self.W_U[:, index] - self.unembed_mean)
            grads = torch.autograd.grad(total, [*deltas, embed_delta], allow_unused=True)
        self.backward_passes += 1
        return self._scores(grads, batch)

    def _final_output(self, normalized: torch.Tensor) -> torch.Tensor:
        """ln_final's output up to its bias (a constant): the normalised vector times ``w``."""
        w = getattr(self.model.model.ln_final, "w", None)
        return normalized if w is None else normalized * w

    def _scores(self, grads: Sequence[torch.Tensor | None], batch: int) -> torch.Tensor:
        n_layers = self.dictionaries.n_layers
        out = torch.zeros(batch, self.n_sources, dtype=torch.float64)
        n_feat = len(self.active)
        zeros = torch.zeros(batch, self.n_pos, self.model.d_model, dtype=self.model.dtype)
        for layer in range(n_layers):
            grad = grads[layer]
            grad = zeros if grad is None else grad.detach().cpu()
            columns, pos, writes = self._decoder_writes[layer]
            if len(columns):
                out[:, columns] += torch.einsum("bnd,nd->bn", grad[:, pos], writes.cpu()).double()
            error = self.state.errors[layer].cpu()
            start = n_feat + layer * self.n_pos
            out[:, start : start + self.n_pos] = torch.einsum("bpd,pd->bp", grad, error).double()
        embed_grad = grads[n_layers]
        embed_grad = zeros if embed_grad is None else embed_grad.detach().cpu()
        token_vectors = self.W_E[self.state.tokens].cpu()
        start = n_feat + n_layers * self.n_pos
        out[:, start : start + self.n_pos] = torch.einsum(
            "bpd,pd->bp", embed_grad, token_vectors
        ).double()
        return out


def attribute_features(
    model: LoadedModel,
    dictionaries: DictionarySet,
    tokens: Sequence[int] | torch.Tensor,
    graph_id: str,
    *,
    max_feature_nodes: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    max_n_logits: int = 10,
    desired_logit_prob: float = 0.95,
    logit_targets: Sequence[int] | None = None,
    prompt: str | None = None,
    transcoder_set: str | None = None,
    progress: bool = False,
    stats: dict[str, int] | None = None,
) -> CircuitGraph:
    """The attribution graph of one prompt: features, errors, tokens and logits, with every
    feature and logit row (``[selected features, errors, tokens, logits]``, circuit-tracer's
    order). Raises one clear error for token ids outside the vocabulary, dictionaries that do
    not fit the model, or a hook the model lacks. ``stats``, if given, receives the number of
    backward passes and rows (``benchmarks/feature_attribution.py``)."""
    if batch_size < 1:
        raise ModelLoadError(f"batch size must be at least 1, got {batch_size}")
    ids = check_tokens(model, tokens)
    hook_names = set(model.model.hook_dict)
    dictionaries.check_fits(hook_names, model.n_layers, model.d_model)
    if "ln_final.hook_normalized" not in hook_names:
        raise ModelLoadError(
            f"{model.name} has no final LayerNorm/RMSNorm (ln_final), where logit edges are read"
        )
    if dictionaries.kind != "transcoder":
        raise DictionaryError(
            f"{dictionaries.source}: these are SAEs (each reads and writes one hook); feature "
            "graphs need transcoders, which replace the MLPs"
        )
    dictionaries = dictionaries.to(model.dtype, model.device)
    state = prompt_state(model, dictionaries, ids)
    logits = choose_logits(state.logits, max_n_logits, desired_logit_prob, logit_targets)
    replacement = FrozenReplacement(model, dictionaries, state)
    n_active, n_pos = len(state.active), int(ids.numel())
    last = n_pos - 1
    logit_rows = _run_rows(
        replacement,
        [("logit", -1, last, t) for t in logits.token_ids],
        batch_size,
        progress,
        "logit rows",
    )
    selected = _select_features(
        replacement, logit_rows, logits.probabilities, max_feature_nodes, batch_size, progress
    )
    if stats is not None:
        stats.update(
            backward_passes=replacement.backward_passes,
            rows=len(logits.token_ids) + len(selected),
            active_features=n_active,
        )
    order = sorted(selected)
    feature_rows = torch.stack([selected[i] for i in order]) if order else None
    keep = torch.tensor(order, dtype=torch.long)
    non_feature = torch.arange(n_active, replacement.n_sources)
    columns = torch.cat([keep, non_feature])
    n_sel, n_logits = len(order), len(logits.token_ids)
    n_nodes = n_sel + (dictionaries.n_layers + 1) * n_pos + n_logits
    adjacency = torch.zeros(n_nodes, n_nodes, dtype=torch.float64)
    if feature_rows is not None:
        adjacency[:n_sel, : n_nodes - n_logits] = feature_rows[:, columns]
    adjacency[n_nodes - n_logits :, : n_nodes - n_logits] = logit_rows[:, columns]
    metadata = GraphMetadata(
        graph_id=graph_id,
        model=model.name,
        prompt=prompt,
        tokens=[_token_text(model, int(t)) for t in ids] if model.tokenizer is not None else [],
        method="attribution-graph",
        source_tool="circuit-atlas",
        source_format="feature-attribution",
        transcoder_set=transcoder_set or dictionaries.source,
        extra={
            "input_token_ids": ids.tolist(),
            "n_active_features": n_active,
            "max_feature_nodes": max_feature_nodes,
        },
    )
    return graph_from_adjacency(
        adjacency.numpy(),
        active=state.active.cpu().numpy(),
        selected=keep.numpy(),
        activations=state.active_values.double().cpu().numpy(),
        n_layers=dictionaries.n_layers,
        n_pos=n_pos,
        logit_ids=logits.token_ids,
        logit_tokens=[_token_text(model, t) for t in logits.token_ids],
        logit_probabilities=logits.probabilities,
        metadata=metadata,
    )


def check_tokens(model: LoadedModel, tokens: Sequence[int] | torch.Tensor) -> torch.Tensor:
    ids = torch.as_tensor(tokens, dtype=torch.long).flatten()
    if ids.numel() < 2:
        raise ModelLoadError(
            "a prompt needs at least 2 tokens: position 0 (BOS) carries no features"
        )
    bad = ids[(ids < 0) | (ids >= model.d_vocab)]
    if bad.numel():
        raise ModelLoadError(
            f"token id(s) {bad.tolist()[:5]} outside this model's vocabulary of {model.d_vocab}"
        )
    n_ctx = int(model.model.cfg.n_ctx)
    if ids.numel() > n_ctx:
        raise ModelLoadError(f"{ids.numel()} tokens, but this model's context is {n_ctx}")
    return ids.to(model.device)


def _token_text(model: LoadedModel, token_id: int) -> str:
    if model.tokenizer is None:
        return ""
    return str(model.tokenizer.decode([token_id]))


def _run_rows(
    replacement: FrozenReplacement,
    targets: list[tuple[str, int, int, int]],
    batch_size: int,
    progress: bool,
    label: str,
) -> torch.Tensor:
    rows = []
    with tqdm(total=len(targets), desc=label, unit="row", disable=not progress, leave=False) as bar:
        for start in range(0, len(targets), batch_size):
            chunk = targets[start : start + batch_size]
            rows.append(replacement.rows(chunk))
            bar.update(len(chunk))
    if not rows:
        return torch.zeros(0, replacement.n_sources, dtype=torch.float64)
    return torch.cat(rows)


def _select_features(
    replacement: FrozenReplacement,
    logit_rows: torch.Tensor,
    logit_probabilities: list[float],
    max_feature_nodes: int | None,
    batch_size: int,
    progress: bool,
) -> dict[int, torch.Tensor]:
    """Rows of the features that become nodes: all of them, or the ``max_feature_nodes`` most
    influential, re-ranked by influence on the rows computed so far every ``UPDATE_INTERVAL``
    batches (circuit-tracer's phased selection)."""
    active = replacement.active
    n_active = len(active)
    targets = [("feature", int(l_), int(p), int(f)) for l_, p, f in active.tolist()]
    if max_feature_nodes is None or max_feature_nodes >= n_active:
        rows = _run_rows(replacement, targets, batch_size, progress, "feature rows")
        return {i: rows[i] for i in range(n_active)}
    done: dict[int, torch.Tensor] = {}
    while len(done) < max_feature_nodes:
        ranking = feature_influence(done, logit_rows, logit_probabilities, n_active)
        pending = [i for i in ranking if i not in done]
        chunk = pending[: min(UPDATE_INTERVAL * batch_size, max_feature_nodes - len(done))]
        rows = _run_rows(
            replacement, [targets[i] for i in chunk], batch_size, progress, "feature rows"
        )
        done.update(zip(chunk, rows))
    return done


def feature_influence(
    done: dict[int, torch.Tensor],
    logit_rows: torch.Tensor,
    logit_probabilities: list[float],
    n_active: int,
    max_iterations: int = 128,
) -> list[int]:
    """Active features ordered by their influence on the logits through the rows computed so
    far (|edges| normalised per row, propagated from the logit probabilities), highest first;
    ties by index."""
    order = sorted(done)
    rows = torch.cat([torch.stack([done[i] for i in order]), logit_rows]) if order else logit_rows
    row_node = order + [-1] * len(logit_rows)  # -1: a logit row (no source column)
    weights = rows.abs()
    weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-8)
    mass = torch.zeros(len(row_node), dtype=torch.float64)
    mass[len(order) :] = torch.tensor(logit_probabilities, dtype=torch.float64)
    influence = torch.zeros(weights.shape[1], dtype=torch.float64)
    row_of_column = {node: r for r, node in enumerate(row_node) if node >= 0}
    for _ in range(max_iterations):
        flow = mass @ weights  # onto every source column
        influence += flow
        mass = torch.zeros_like(mass)
        for column, r in row_of_column.items():
            mass[r] = flow[column]
        if not bool(mass.any()):
            break
    scores = influence[:n_active].numpy()
    return sorted(range(n_active), key=lambda i: (-scores[i], i))


def prompt_tokens(model: LoadedModel, text: str) -> list[int]:
    """Token ids of a prompt with a BOS token first, as circuit-tracer does (position 0 carries
    no features): the tokenizer's own ids, and its BOS prepended when they do not start with a
    special token."""
    if model.tokenizer is None:
        raise ModelLoadError("this model has no tokenizer: give the prompt as --tokens")
    ids = [int(t) for t in model.tokenizer(text, add_special_tokens=False)["input_ids"]]
    special = set(getattr(model.tokenizer, "all_special_ids", []) or [])
    if ids and ids[0] in special:
        return ids
    for candidate in ("bos_token_id", "pad_token_id", "eos_token_id"):
        bos = getattr(model.tokenizer, candidate, None)
        if bos is not None:
            return [int(bos), *ids]
    raise ModelLoadError("this tokenizer has no BOS, pad or EOS token to put at position 0")


def estimated_bytes(model: LoadedModel, n_pos: int, batch_size: int) -> int:
    """A rough peak-memory estimate of one batch (activations kept for the backward pass:
    about a dozen residual-width tensors and the MLP hidden layer per layer, and the attention
    patterns), printed before a large run."""
    cfg = model.model.cfg
    per_copy = n_pos * cfg.n_layers * (12 * cfg.d_model + 2 * (cfg.d_mlp or 0))
    per_copy += cfg.n_layers * cfg.n_heads * n_pos * n_pos * 2
    element = torch.finfo(model.dtype).bits // 8
    return int(batch_size * per_copy * element)
