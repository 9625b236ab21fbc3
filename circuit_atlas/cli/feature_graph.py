"""``circuit-atlas attribute --transcoders DIR``: a feature-level attribution graph of one prompt
(features, error nodes, token embeddings, logits), stored like imported graphs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import click

from circuit_atlas.cli.options import StoreContext, print_table
from circuit_atlas.progress import progress_enabled

LARGE_RUN_BYTES = 1 << 30  # say how much memory a batch needs from 1 GiB on


def parse_token_ids(text: str) -> list[int]:
    """``"1, 7 3"`` → ``[1, 7, 3]``; a clear usage error otherwise."""
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if not parts or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise click.BadParameter(
            f"expected token ids such as '1,7,3', got {text!r}", param_hint="--tokens"
        )
    return [int(p) for p in parts]


def default_feature_graph_id(model_source: str, transcoders: Path, tokens_or_prompt: str) -> str:
    stem = Path(model_source).stem if Path(model_source).suffix else Path(model_source).name
    digest = hashlib.sha256(tokens_or_prompt.encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stem}-{transcoders.name}-{digest}")


def run_feature_attribution(
    state: StoreContext,
    *,
    model_source: str,
    transcoders: Path,
    prompt: str | None,
    tokens: str | None,
    graph_id: str | None,
    max_feature_nodes: int | None,
    batch_size: int,
    max_n_logits: int,
    desired_logit_prob: float,
    device: str,
    dtype: str,
    to_store: bool,
    replace: bool,
    out: str,
) -> None:
    from circuit_atlas.graph import check_graph_id
    from circuit_atlas.ingest.attribution.preflight import check_model_source

    if (prompt is None) == (tokens is None):
        raise click.UsageError("give the prompt as exactly one of --prompt TEXT or --tokens IDS")
    if not to_store:
        raise click.UsageError("a feature graph is stored; leave --store on")
    token_ids = parse_token_ids(tokens) if tokens is not None else None
    check_model_source(model_source)
    graph_id = graph_id or default_feature_graph_id(
        model_source, transcoders, tokens if tokens is not None else str(prompt)
    )
    check_graph_id(graph_id)

    from circuit_atlas.ingest.attribution.model_adapter import check_device, load_model
    from circuit_atlas.ingest.features.attribution import (
        attribute_features,
        estimated_bytes,
        prompt_tokens,
    )
    from circuit_atlas.ingest.features.dictionaries import load_dictionaries

    dictionaries = load_dictionaries(transcoders)  # before the model: a bad folder fails fast
    state.check_can_store(graph_id, replace)
    check_device(device)
    model = load_model(model_source, device=device, dtype=dtype)
    ids = token_ids if token_ids is not None else prompt_tokens(model, str(prompt))
    need = estimated_bytes(model, len(ids), batch_size)
    if need >= LARGE_RUN_BYTES:
        click.echo(
            f"about {need / 2**30:.1f} GiB per batch of {batch_size} rows; lower --batch-size "
            "to use less",
            err=True,
        )
    graph = attribute_features(
        model,
        dictionaries,
        ids,
        graph_id,
        max_feature_nodes=max_feature_nodes,
        batch_size=batch_size,
        max_n_logits=max_n_logits,
        desired_logit_prob=desired_logit_prob,
        prompt=prompt,
        progress=progress_enabled(),
    )
    written = state.store().write_graph(graph, replace=replace)
    nodes = graph.nodes_frame()
    kinds = nodes["kind"].value_counts()
    logits = nodes[nodes["kind"] == "logit"]
    summary = {
        "graph": f"{written.graph_id} ({written.status})",
        "tokens": len(ids),
        "active features": graph.metadata.extra.get("n_active_features"),
        "feature nodes": int(kinds.get("feature", 0)),
        "error nodes": int(kinds.get("error", 0)),
        "logit nodes": ", ".join(
            f"{t} ({p:.3f})" for t, p in zip(logits["feature"], logits["token_prob"])
        ),
        "edges": graph.n_edges,
    }
    if out == "json":
        from circuit_atlas.cli.json_output import strict_json

        click.echo(strict_json({"summary": summary}, indent=1))
        return
    import pandas as pd

    table = pd.DataFrame({"": list(summary), "value": [str(v) for v in summary.values()]})
    print_table(table, out)
    if out == "table":
        click.echo(f"\nnext: circuit-atlas score {written.graph_id}")
