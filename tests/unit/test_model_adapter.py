"""The adapter's offline conversion: a Hugging Face folder loads into TransformerLens unchanged.

Tiny random Llama (grouped-query attention, which the adapter ungroups) and GPT-2 models are
saved with a real word-level tokenizer, loaded through ``load_model``, and must give the logits
``transformers`` gives.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from circuit_atlas.ingest.attribution.component_graph import ComponentGraph
from circuit_atlas.ingest.attribution.model_adapter import load_model

from helpers.skips import skip_test

torch.set_num_threads(1)
WORDS = ["<pad>", "<unk>", "When", "Mary", "and", "John", "went", "to", "the", "store", ","]


def save_tokenizer(folder: Path) -> None:
    vocab = {word: i for i, word in enumerate(WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>")
    tokenizer.save_pretrained(folder)


def hf_models():
    torch.manual_seed(0)
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(WORDS),
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            tie_word_embeddings=False,
        )
    )
    gpt2 = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(WORDS), n_embd=32, n_layer=2, n_head=4, n_positions=64)
    )
    return {"llama": llama, "gpt2": gpt2}


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_a_hugging_face_folder_gives_the_same_logits(tmp_path: Path, architecture: str):
    hf = hf_models()[architecture].eval()
    hf.save_pretrained(tmp_path)
    save_tokenizer(tmp_path)
    loaded = load_model(tmp_path)
    tokens = torch.tensor([loaded.encode("When Mary and John went to the store , John")])
    assert tokens.shape[1] == 10 and (tokens != 1).all()  # known words, no <unk>
    with torch.no_grad():
        expected = hf(tokens).logits
        got = loaded.run(tokens)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert ComponentGraph.of(loaded).n_heads == 4  # grouped k/v heads ungrouped per query head


def test_greater_than_years_become_answers_and_foils(tmp_path: Path):
    """greater_than.csv: label YY → answers are the years > YY, foils the years ≤ YY."""
    from circuit_atlas.ingest.attribution.methods import attribute
    from circuit_atlas.ingest.attribution.tasks import load_task

    from helpers.data import SHARED

    source = SHARED / "tasks" / "greater_than.csv"
    if not source.exists():
        skip_test("../shared/data is absent")
    years = [f"{y:02d}" for y in range(100)]
    words = ["<pad>", "<unk>", *years, "The", "lasted", "from", "the", "year", "to"]
    vocab = {word: i for i, word in enumerate(words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>"
    ).save_pretrained(tmp_path)
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(words), n_embd=32, n_layer=2, n_head=4, n_positions=64)
    ).save_pretrained(tmp_path)
    model = load_model(tmp_path)
    rows = source.read_text().splitlines()[:6]
    small = tmp_path / "greater_than.csv"
    small.write_text("\n".join(rows) + "\n")
    task = load_task(small, model)
    assert task.default_metric == "prob_diff" and len(task.examples) == 5
    first = task.examples[0]  # "…from the year 1352 to the year 13" with label 52
    assert first.answers == tuple(vocab[f"{y:02d}"] for y in range(53, 100))
    assert first.foils == tuple(vocab[f"{y:02d}"] for y in range(0, 53))
    result = attribute(model, task, "eap", progress=False)
    assert -1 <= result.clean_metric <= 1 and bool(
        torch.isfinite(torch.tensor(result.scores)).all()
    )


def test_float64_weights_load_exactly_when_the_config_names_no_dtype(tmp_path: Path):
    """A ``{cfg, state_dict}`` file whose cfg has no dtype, loaded as float64, keeps every bit
    (the model is built in the requested dtype, not in float32 and cast afterwards: that lost
    ~6e-8 per weight, found by the EAP-IG reference comparison)."""
    from helpers.models import TINY_CONFIG

    torch.manual_seed(0)
    source = load_model(TINY_CONFIG, dtype="float64").model.state_dict()
    weights = {name: torch.randn_like(value) for name, value in source.items()}
    path = tmp_path / "w.pt"
    torch.save({"cfg": dict(TINY_CONFIG), "state_dict": weights}, path)
    loaded = load_model(str(path), dtype="float64").model.state_dict()
    for name, value in weights.items():
        if value.is_floating_point() and "IGNORE" not in name and "mask" not in name:
            assert torch.equal(loaded[name], value), name
