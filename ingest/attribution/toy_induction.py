"""A 2-layer attention-only model trained on repeated sequences, whose mechanism is known.

Each training sequence is ``k`` distinct random tokens followed by the start of their repeat
(``x[t] = x[t - k]`` for ``t ≥ k``, ``k`` varied per sequence and at least half the length, so
each token recurs at most once), so predicting the repeated part needs an induction circuit: a
layer-0 previous-token head writes "the token before me was A" into each position, and a layer-1
induction head at the second A attends to the position after the first A (the query matches
that key) and copies the token there. Distinct
tokens make the earlier occurrence unique; varying ``k`` stops positional shortcuts.

The trained weights ship in ``circuit_atlas/data/induction_2l.pt`` (retrain with
``python -m circuit_atlas.ingest.attribution.toy_induction --out FILE``); tests check that
attribution ranks its induction and previous-token heads first. :func:`head_roles` finds those
heads independently, from attention patterns alone.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

import torch

from circuit_atlas.ingest.attribution.tasks import Task, TaskExample

CONFIG = dict(
    n_layers=2,
    d_model=64,
    n_heads=4,
    d_head=16,
    n_ctx=32,
    d_vocab=64,
    attn_only=True,
    normalization_type="LN",
    act_fn="gelu",
    positional_embedding_type="standard",
    seed=0,
)
LENGTH = 24
MIN_OFFSET, MAX_OFFSET = 12, 18  # k ≥ LENGTH / 2: the first k tokens are repeated once


def weights_path() -> Path:
    return Path(str(resources.files("circuit_atlas") / "data" / "induction_2l.pt"))


def repeated_sequences(
    n: int, generator: torch.Generator, length: int = LENGTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n, length]`` tokens and each row's offset ``k``."""
    rows, offsets = [], []
    for _ in range(n):
        k = int(torch.randint(MIN_OFFSET, MAX_OFFSET + 1, (1,), generator=generator))
        first = torch.randperm(int(CONFIG["d_vocab"]), generator=generator)[:k]
        rows.append(first.repeat(length // k + 1)[:length])
        offsets.append(k)
    return torch.stack(rows), torch.tensor(offsets)


def induction_task(n: int = 24, seed: int = 7) -> Task:
    """Clean: A B … A → B. Corrupted: the first A becomes an unused token C, so no earlier
    position is preceded by A (what the previous-token head writes and the induction head's
    query looks for). The metric is B's logit against another unused token's."""
    tokens, offsets = repeated_sequences(n, torch.Generator().manual_seed(seed))
    examples = []
    for row, k in zip(tokens.tolist(), offsets.tolist()):
        t = len(row) - 2  # predict row[t + 1] = row[t + 1 - k]
        clean = row[: t + 1]
        answer = row[t + 1]
        unused = [x for x in range(int(CONFIG["d_vocab"])) if x not in row]
        corrupted = list(clean)
        corrupted[t - k] = unused[0]
        examples.append(TaskExample(clean, corrupted, (answer,), (unused[1],)))
    return Task("induction", examples, "logit_diff")


def train(steps: int = 3000, batch: int = 64, seed: int = 0, progress: bool = True):
    """Train the model from :data:`CONFIG`; loss only on repeated positions."""
    from tqdm.auto import tqdm

    from circuit_atlas.ingest.attribution.model_adapter import load_model

    torch.manual_seed(seed)
    loaded = load_model(CONFIG)
    model = loaded.model
    model.requires_grad_(True)
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(steps), disable=not progress, desc="training induction model"):
        tokens, offsets = repeated_sequences(batch, generator)
        logits = model(tokens, return_type="logits")[:, :-1]
        targets = tokens[:, 1:]
        positions = torch.arange(1, LENGTH)[None, :]
        repeated = positions >= offsets[:, None]  # predicting x[t] with t ≥ k
        loss = torch.nn.functional.cross_entropy(logits[repeated], targets[repeated])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    model.requires_grad_(False)
    return loaded, float(loss.detach())


def head_roles(loaded, n: int = 64, seed: int = 1) -> dict[str, torch.Tensor]:
    """Per-head scores from attention patterns alone: ``previous_token[h]`` (layer 0: mean
    attention from t to t − 1) and ``induction[h]`` (layer 1: mean attention mass, over repeated
    positions, on the positions just after an earlier occurrence of the current token)."""
    tokens, offsets = repeated_sequences(n, torch.Generator().manual_seed(seed))
    _, cache = loaded.model.run_with_cache(tokens)
    pattern0 = cache["blocks.0.attn.hook_pattern"]  # [batch, head, query, key]
    pattern1 = cache["blocks.1.attn.hook_pattern"]
    t = torch.arange(1, LENGTH)
    previous = pattern0[:, :, t, t - 1].mean(dim=(0, 2))
    induction = torch.zeros(loaded.n_heads)
    for row, k in enumerate(offsets.tolist()):
        x = tokens[row]
        after_same = torch.zeros(LENGTH, LENGTH, dtype=torch.bool)  # [query, key]
        after_same[:, 1:] = x[None, :-1] == x[:, None]
        after_same &= torch.ones(LENGTH, LENGTH, dtype=torch.bool).tril()
        mass = (pattern1[row] * after_same).sum(-1)  # [head, query]
        induction += mass[:, k:].mean(-1)
    return {"previous_token": previous, "induction": induction / n}


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the shipped 2-layer induction model.")
    parser.add_argument("--out", type=Path, default=weights_path())
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    loaded, loss = train(args.steps)
    state = {
        k: v for k, v in loaded.model.state_dict().items() if not k.endswith((".mask", ".IGNORE"))
    }
    torch.save({"cfg": CONFIG, "state_dict": state}, args.out)
    roles = head_roles(loaded)
    print(
        f"final loss {loss:.4f}; previous-token {roles['previous_token'].tolist()}; "
        f"induction {roles['induction'].tolist()}; saved {args.out}"
    )


if __name__ == "__main__":
    main()
