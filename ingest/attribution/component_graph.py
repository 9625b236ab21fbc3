"""The component graph edge attribution scores: who can write into whose input.

Nodes are ``input`` (the embeddings), every attention head ``a{l}.h{h}``, every MLP ``m{l}`` and
``logits``. Every node *output* is a "forward slot"; every node *input* is a "backward slot", and
a head has three (q, k, v). Forward slots are numbered in topological order, so the sources that
can feed any backward slot form a prefix ``[0, upstream[k])`` of the forward slots: an edge is
``(f, k)`` with ``f < upstream[k]``. Scores live in an ``[n_forward, n_backward]`` array masked by
:attr:`ComponentGraph.edge_mask` (the standard EAP-IG construction; GPT-2 small has 32,491 edges).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from circuit_atlas.ingest.attribution.model_adapter import LoadedModel

CHANNELS = ("q", "k", "v")


@dataclass(frozen=True)
class ComponentGraph:
    n_layers: int
    n_heads: int
    has_mlps: bool = True
    parallel_attn_mlp: bool = False
    forward_names: list[str] = field(init=False, repr=False)
    backward_names: list[str] = field(init=False, repr=False)
    backward_channels: list[str] = field(init=False, repr=False)
    upstream: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        forward, backward, channels, upstream = ["input"], [], [], []
        for layer in range(self.n_layers):
            layer_start = len(forward)
            heads = [f"a{layer}.h{h}" for h in range(self.n_heads)]
            for channel in CHANNELS:
                backward += heads
                channels += [channel] * self.n_heads
                upstream += [layer_start] * self.n_heads
            forward += heads
            if self.has_mlps:
                backward.append(f"m{layer}")
                channels.append("")
                # a sequential block's MLP reads its own layer's heads; a parallel one does not
                upstream.append(layer_start if self.parallel_attn_mlp else len(forward))
                forward.append(f"m{layer}")
        backward.append("logits")
        channels.append("")
        upstream.append(len(forward))
        object.__setattr__(self, "forward_names", forward)
        object.__setattr__(self, "backward_names", backward)
        object.__setattr__(self, "backward_channels", channels)
        object.__setattr__(self, "upstream", np.asarray(upstream, dtype=np.int64))

    @classmethod
    def of(cls, model: LoadedModel) -> ComponentGraph:
        """The graph of a :class:`~.model_adapter.LoadedModel`."""
        return cls(model.n_layers, model.n_heads, model.has_mlps, model.parallel_attn_mlp)

    # Sizes and slots -----------------------------------------------------------------------
    @property
    def n_forward(self) -> int:
        return len(self.forward_names)

    @property
    def n_backward(self) -> int:
        return len(self.backward_names)

    @property
    def per_layer_forward(self) -> int:
        return self.n_heads + int(self.has_mlps)

    @property
    def per_layer_backward(self) -> int:
        return 3 * self.n_heads + int(self.has_mlps)

    def head_forward_slots(self, layer: int) -> slice:
        start = 1 + layer * self.per_layer_forward
        return slice(start, start + self.n_heads)

    def mlp_forward_slot(self, layer: int) -> int:
        return 1 + layer * self.per_layer_forward + self.n_heads

    def head_backward_slots(self, layer: int, channel: str) -> slice:
        start = layer * self.per_layer_backward + CHANNELS.index(channel) * self.n_heads
        return slice(start, start + self.n_heads)

    def mlp_backward_slot(self, layer: int) -> int:
        return layer * self.per_layer_backward + 3 * self.n_heads

    @property
    def logits_backward_slot(self) -> int:
        return self.n_backward - 1

    # Edges ---------------------------------------------------------------------------------
    @property
    def edge_mask(self) -> np.ndarray:
        """``[n_forward, n_backward]`` booleans: True where an edge exists."""
        return np.arange(self.n_forward)[:, None] < self.upstream[None, :]

    @property
    def n_edges(self) -> int:
        return int(self.upstream.sum())

    @property
    def node_names(self) -> list[str]:
        return [*self.forward_names, "logits"]

    def edge_name(self, forward: int, backward: int) -> str:
        """EAP-IG's edge name: ``src->dst`` or ``src->dst<q>``."""
        channel = self.backward_channels[backward]
        suffix = f"<{channel}>" if channel else ""
        return f"{self.forward_names[forward]}->{self.backward_names[backward]}{suffix}"

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Forward and backward slot of every edge, in a fixed order (by backward slot)."""
        backward = np.repeat(np.arange(self.n_backward), self.upstream)
        forward = np.concatenate([np.arange(n) for n in self.upstream])
        return forward, backward

    def node_of_backward(self) -> np.ndarray:
        """Index into :attr:`node_names` of the node each backward slot belongs to."""
        index = {name: i for i, name in enumerate(self.node_names)}
        return np.array([index[name] for name in self.backward_names], dtype=np.int64)
