"""The model with an SAE spliced in at every site: each site's activation rebuilt from its nodes.

A site's nodes are its SAE's feature activations ``f = encode(x)`` and its error term
``ε = x − decode(f)``; ``decode(f) + ε = x``, so splicing changes no number the model computes.
What a run does at each site is its *control*:

* **live** (no control): nodes are read from the activation as it arrives and recorded, as
  functions of everything upstream, so downstream nodes can be differentiated by upstream ones;
* :class:`Tap`: like live, plus a zero leaf added to the features and another to the error, so
  the gradient of the metric with respect to the taps is its gradient with respect to the nodes
  (everything downstream live; moving a feature leaves the error where it is);
* :class:`Fixed`: the activation is *replaced* by ``decode(features) + error`` from given values
  (a patch, an interpolation, or variables to differentiate by);
* :class:`Held`: the site's nodes are read from the arriving activation (as live) but its output
  is its clean activation, so nothing passes *through* it: reading every site this way while one
  upstream site varies gives each site's direct dependence on that one, all in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.sae_circuits.sites import Site


@dataclass
class Nodes:
    """One site's node values for a batch."""

    features: torch.Tensor  # [batch, pos, d_features] (d_features = 0 without an SAE)
    error: torch.Tensor  # [batch, pos, d_model]

    def detached(self) -> Nodes:
        return Nodes(self.features.detach(), self.error.detach())

    def leaves(self) -> Nodes:
        """Copies that require gradients: variables to differentiate by."""
        return Nodes(
            self.features.detach().clone().requires_grad_(True),
            self.error.detach().clone().requires_grad_(True),
        )

    def lerp(self, other: Nodes, alpha: float) -> Nodes:
        """``self + alpha · (other − self)``, detached."""
        return Nodes(
            torch.lerp(self.features.detach(), other.features.detach(), alpha),
            torch.lerp(self.error.detach(), other.error.detach(), alpha),
        )

    def minus(self, other: Nodes) -> Nodes:
        return Nodes(self.features - other.features, self.error - other.error)


@dataclass
class Tap:
    features: torch.Tensor  # zeros, requires_grad
    error: torch.Tensor

    @classmethod
    def zeros_like(cls, nodes: Nodes) -> Tap:
        return cls(
            torch.zeros_like(nodes.features, requires_grad=True),
            torch.zeros_like(nodes.error, requires_grad=True),
        )


@dataclass
class Fixed:
    nodes: Nodes


@dataclass
class Held:
    nodes: Nodes  # what the site outputs (its clean values)


Control = Tap | Fixed | Held


def encode(site: Site, x: torch.Tensor) -> torch.Tensor:
    if site.sae is None:
        return x.new_zeros((*x.shape[:-1], 0))
    return site.sae.encode(x)


def decode(site: Site, features: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if site.sae is None:
        return torch.zeros_like(like)
    return features @ site.sae.W_dec + site.sae.b_dec


def run_spliced(
    model: LoadedModel,
    sites: list[Site],
    tokens: torch.Tensor,
    controls: Mapping[int, Control] | None = None,
) -> tuple[torch.Tensor, dict[int, Nodes]]:
    """Logits of ``tokens`` with every site under its control; the nodes each site had."""
    controls = controls or {}
    recorded: dict[int, Nodes] = {}

    def hook_for(index: int, site: Site) -> Any:
        control = controls.get(index)

        def hook(x: torch.Tensor, hook: Any) -> torch.Tensor:
            if isinstance(control, Fixed):
                recorded[index] = control.nodes
                return decode(site, control.nodes.features, x) + control.nodes.error
            features = encode(site, x)
            error = x - decode(site, features, x)
            if isinstance(control, Held):
                recorded[index] = Nodes(features, error)
                return decode(site, control.nodes.features, x) + control.nodes.error
            if isinstance(control, Tap):
                features = features + control.features
                error = error + control.error
                recorded[index] = Nodes(features, error)
                return decode(site, features, x) + error
            recorded[index] = Nodes(features, error)
            return x

        return hook

    hooks = [(site.hook, hook_for(i, site)) for i, site in enumerate(sites)]
    logits = model.run(tokens, hooks=hooks)
    return logits, recorded
