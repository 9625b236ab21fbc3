"""Clean/corrupted prompt pairs from CSV or JSONL, and batches of them as padded tensors.

Formats recognised by their columns (``clean`` and ``corrupted`` always; ``--corrupted-column``
picks another corrupted column, e.g. ``corrupted_hard``):

- ``label`` (EAP-IG's ``greater_than.csv``): the label is a two-digit year ``YY``; the answers
  are the two-digit tokens ``> YY`` and the foils those ``<= YY`` (default metric: probability
  difference, as in the greater-than paper). Each ``00``…``99`` must be one token.
- ``correct_idx`` and ``incorrect_idx`` (EAP-IG's ``ioi_llama.csv``): token *ids* of the answer
  and the foil, valid only for the tokenizer that wrote them (default metric: logit difference).
- ``answer`` and ``foil``: strings (or, in JSONL, lists of strings) that must be single tokens.

Padding is on the right. With causal attention a real token never attends to a pad after it, and
positions still start at 0, so every real position computes exactly what it computes unpadded;
the metric reads each example's own last real token. Clean and corrupted prompts of one pair must
tokenise to the same length, because patching is position by position; pairs that do not are
dropped and counted (``Task.dropped``), never silently misaligned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from circuit_atlas.errors import TaskError
from circuit_atlas.ingest.attribution.preflight import read_task_rows

if TYPE_CHECKING:
    from circuit_atlas.ingest.attribution.model_adapter import LoadedModel


@dataclass(frozen=True)
class TaskExample:
    clean: list[int]
    corrupted: list[int]
    answers: tuple[int, ...]
    foils: tuple[int, ...]
    clean_text: str = ""


@dataclass
class Task:
    name: str
    examples: list[TaskExample]
    default_metric: str
    dropped: list[int] = field(default_factory=list)  # row numbers with unequal lengths

    def batches(self, batch_size: int, pad_id: int) -> Iterator[Batch]:
        for start in range(0, len(self.examples), batch_size):
            yield Batch.of(self.examples[start : start + batch_size], pad_id)

    def n_batches(self, batch_size: int) -> int:
        return -(-len(self.examples) // batch_size)


@dataclass
class Batch:
    """One batch on the CPU; :meth:`to` moves it to the model's device."""

    clean: torch.Tensor  # [batch, pos] token ids, right-padded
    corrupted: torch.Tensor
    last: torch.Tensor  # [batch] index of each example's last real token
    answers: list[tuple[int, ...]]
    foils: list[tuple[int, ...]]

    @classmethod
    def of(cls, examples: Sequence[TaskExample], pad_id: int) -> Batch:
        width = max(len(e.clean) for e in examples)
        clean = torch.full((len(examples), width), pad_id, dtype=torch.long)
        corrupted = clean.clone()
        for row, example in enumerate(examples):
            clean[row, : len(example.clean)] = torch.tensor(example.clean)
            corrupted[row, : len(example.corrupted)] = torch.tensor(example.corrupted)
        last = torch.tensor([len(e.clean) - 1 for e in examples])
        return cls(
            clean, corrupted, last, [e.answers for e in examples], [e.foils for e in examples]
        )

    @property
    def size(self) -> int:
        return int(self.clean.shape[0])

    @property
    def valid(self) -> torch.Tensor:
        """``[batch, pos]`` True on real tokens (the attention mask)."""
        positions = torch.arange(self.clean.shape[1], device=self.last.device)
        return positions[None, :] <= self.last[:, None]

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.clean.to(device),
            self.corrupted.to(device),
            self.last.to(device),
            self.answers,
            self.foils,
        )


def load_task(path: str | Path, model: LoadedModel, corrupted_column: str = "corrupted") -> Task:
    """Read ``path`` (CSV or JSONL) and tokenise it with ``model`` (a ``LoadedModel``)."""
    path = Path(path)
    rows = read_task_rows(path, corrupted_column)
    columns = set(rows[0])
    answer_reader, default_metric = _answer_format(path, columns, model)
    examples, dropped = [], []
    for number, row in enumerate(rows, start=1):
        clean = _prompt(row["clean"], model, path, number)
        corrupted = _prompt(row[corrupted_column], model, path, number)
        answers, foils = answer_reader(row, number)
        if len(clean) != len(corrupted):
            dropped.append(number)
            continue
        examples.append(TaskExample(clean, corrupted, answers, foils, str(row["clean"])))
    if not examples:
        raise TaskError(
            f"task file {path}: no pair has clean and corrupted prompts of equal token length "
            f"for {model.name}; patching needs them aligned position by position"
        )
    return Task(path.stem, examples, default_metric, dropped)


def _answer_format(path: Path, columns: set[str], model: LoadedModel):
    """A function row → (answers, foils), and the metric the format implies."""
    if "label" in columns:
        years = {yy: model.single_token(f"{yy:02d}") for yy in range(100)}

        def greater_than(row: dict, number: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
            label = _integer(row["label"], path, number, "label")
            if not 0 <= label <= 99:
                raise TaskError(f"{path} row {number}: label {label} is not a two-digit year")
            return (
                tuple(years[y] for y in range(label + 1, 100)),
                tuple(years[y] for y in range(label + 1)),
            )

        return greater_than, "prob_diff"
    if {"correct_idx", "incorrect_idx"} <= columns:

        def token_ids(row: dict, number: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
            ids = [_integer(row[c], path, number, c) for c in ("correct_idx", "incorrect_idx")]
            for token in ids:
                if not 0 <= token < model.d_vocab:
                    raise TaskError(
                        f"{path} row {number}: token id {token} is outside {model.name}'s "
                        f"vocabulary of {model.d_vocab} (ids are tokenizer-specific)"
                    )
            return (ids[0],), (ids[1],)

        return token_ids, "logit_diff"
    if {"answer", "foil"} <= columns:

        def strings(row: dict, number: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
            return tuple(_tokens(row["answer"], model)), tuple(_tokens(row["foil"], model))

        return strings, "logit_diff"
    raise TaskError(
        f"task file {path} has no answer columns: expected 'label', "
        f"'correct_idx'+'incorrect_idx', or 'answer'+'foil' (it has: {', '.join(sorted(columns))})"
    )


def _prompt(value: object, model: LoadedModel, path: Path, number: int) -> list[int]:
    """A prompt's token ids: text is tokenised; a JSONL list of integers is taken as ids."""
    if isinstance(value, list):
        if not value or not all(isinstance(t, int) and 0 <= t < model.d_vocab for t in value):
            raise TaskError(
                f"{path} row {number}: a prompt list must be token ids in [0, {model.d_vocab})"
            )
        return list(value)
    return model.encode(str(value))


def _tokens(value: object, model: LoadedModel) -> list[int]:
    """Answer/foil tokens: strings must be single tokens; integers are token ids (JSONL)."""
    items = value if isinstance(value, list) else [value]
    ids = []
    for item in items:
        if isinstance(item, int):
            if not 0 <= item < model.d_vocab:
                raise TaskError(f"token id {item} is outside the vocabulary ({model.d_vocab})")
            ids.append(item)
        else:
            ids.append(model.single_token(str(item)))
    return ids


def _integer(value: Any, path: Path, number: int, column: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TaskError(f"{path} row {number}: {column} {value!r} is not an integer") from None
