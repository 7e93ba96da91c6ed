"""Probes of the demo study (quick world): translation retrieval against brute force and a perfect-alignment model,
held-out perplexity of BASE (English far below the X languages)."""

from __future__ import annotations

import math
import os
import re
import zlib
from types import SimpleNamespace

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lrmerge.demo import build_world, profile_config  # noqa: E402
from lrmerge.demo import probes  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(profile_config("quick"), root=tmp_path_factory.mktemp("world"), progress=False)


def _brute_force_top1(x, e, gold):
    """Nearest English row by cosine after centring, one query at a time with python loops."""
    hits = 0
    x_mean = [sum(row[k] for row in x) / len(x) for k in range(len(x[0]))]
    e_mean = [sum(row[k] for row in e) / len(e) for k in range(len(e[0]))]

    def cos(a, b):
        return sum(p * q for p, q in zip(a, b)) / math.sqrt(sum(p * p for p in a) * sum(q * q for q in b))

    for i, row in enumerate(x):
        xc = [v - m for v, m in zip(row, x_mean)]
        sims = [cos(xc, [v - m for v, m in zip(er, e_mean)]) for er in e]
        hits += max(range(len(e)), key=sims.__getitem__) == gold[i]
    return hits / len(x)


def test_retrieval_accuracy_matches_brute_force_and_identity_is_perfect():
    torch.manual_seed(0)
    en = torch.randn(3, 20, 8)  # (layers, n_en, hidden)
    gold = torch.randint(0, 20, (12,))
    x = en[:, gold] + torch.tensor([0.0, 0.8, 3.0]).view(3, 1, 1) * torch.randn(3, 12, 8)  # noise grows by layer
    got = probes.retrieval_accuracy(x, en, gold)
    for layer in range(3):
        assert got[layer] == pytest.approx(_brute_force_top1(x[layer].tolist(), en[layer].tolist(), gold.tolist()))
    assert got[0] == 1.0 and got[2] < 1.0
    with pytest.raises(ValueError, match="gold"):
        probes.retrieval_accuracy(x, en, gold[:5])


class _AlignedModel(torch.nn.Module):
    """A perfect-alignment 'model': layer 1 holds a fixed vector of the word's English translation plus, for X words,
    a shared language offset (which mean-centring removes); layers 0 and 2 hold a vector of the surface string."""

    def __init__(self, tokenizer, to_english: dict[str, str]):
        super().__init__()
        self.tokenizer, self.to_english = tokenizer, to_english

    @staticmethod
    def _vector(key: str) -> torch.Tensor:
        return torch.randn(64, generator=torch.Generator().manual_seed(zlib.crc32(key.encode())))

    def forward(self, input_ids, output_hidden_states=True):
        word = self.tokenizer.decode(input_ids[0], skip_special_tokens=True).strip()
        english = self.to_english.get(word, word)
        n = input_ids.shape[1]
        offset = 5.0 * self._vector("language offset") if english != word else 0.0
        layers = [self._vector("surface" + word), self._vector(english) + offset, self._vector("other" + word)]
        return SimpleNamespace(hidden_states=tuple(v.expand(1, n, 64) for v in layers))


def test_translation_retrieval_perfect_alignment_and_chance(world, monkeypatch):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer)
    rows = probes.read_lexicon(world, "tbx")
    model = _AlignedModel(tokenizer, {row["tbx"]: row["eng"] for row in rows})
    monkeypatch.setattr(probes, "_load", lambda model_dir: (model, tokenizer))
    result = probes.translation_retrieval("unused", world, "tbx", pooling="last")
    assert result == probes.translation_retrieval("unused", world, "tbx")  # the fake repeats one vector per word
    assert result["top1"] == 1.0 and result["best_layer"] == 1 and result["per_layer"][0] < 0.2
    assert result["chance"] == pytest.approx(1 / len(rows))
    # queries: enciphered words that the CT corpus contains (brute force over its lines)
    corpus_words = {w for line in world.corpus("tbx").read_text(encoding="utf-8").splitlines() for w in line.split()}
    expected = [row for row in rows if row["tbx"] != row["eng"] and row["tbx"] in corpus_words]
    assert 0 < result["n_queries"] == len(expected) < len(rows)
    n_single = sum(len(tokenizer.tokenize(row["tbx"])) == 1 for row in expected)
    assert result["single_token_queries"] == n_single
    assert result["top1_single_token"] in (1.0, None) and result["top1_multi_token"] in (1.0, None)


def test_translation_retrieval_splits_top1_by_query_tokenization(world, monkeypatch):
    """A model that aligns only the words its tokenizer spells as one token: the split shows exactly that."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer)
    rows = probes.read_lexicon(world, "tbx")
    aligned = {row["tbx"]: row["eng"] if len(tokenizer.tokenize(row["tbx"])) == 1 else "unaligned " + row["tbx"]
               for row in rows}  # every X word carries the language offset; only whole-word ones the translation
    monkeypatch.setattr(probes, "_load", lambda model_dir: (_AlignedModel(tokenizer, aligned), tokenizer))
    result = probes.translation_retrieval("unused", world, "tbx")
    n_single, n = result["single_token_queries"], result["n_queries"]
    assert 0 < n_single < n  # the quick world's tokenizer spells some tbx words whole, others in pieces
    assert result["best_layer"] == 1 and result["top1_single_token"] == 1.0
    assert result["top1_multi_token"] < 0.2
    expected_top1 = (n_single + result["top1_multi_token"] * (n - n_single)) / n
    assert result["top1"] == pytest.approx(expected_top1)


def test_translation_retrieval_of_base_and_bad_language(world):
    result = probes.translation_retrieval(world.base, world, "mnx")
    assert len(result["per_layer"]) == 3  # embeddings + 2 layers in the quick BASE
    assert all(0.0 <= a <= 1.0 for a in result["per_layer"]) and result["top1"] == max(result["per_layer"])
    assert result["single_token_queries"] == 0 and result["top1_single_token"] is None  # mnx: bytes only
    assert result["top1_multi_token"] == result["top1"]
    with pytest.raises(ValueError, match=re.escape(str(world.lexicon))):
        probes.read_lexicon(world, "xyz")
    with pytest.raises(ValueError, match="allowed"):
        probes.translation_retrieval(world.base, world, "mnx", pooling="max")


def test_heldout_perplexity_finite_and_lowest_for_english(world):
    ppl = {lang: probes.heldout_perplexity(world.base, world, lang, n_texts=40) for lang in ("eng", "tbx", "mnx")}
    assert all(math.isfinite(v) and v > 1.0 for v in ppl.values())
    assert ppl["eng"] < ppl["tbx"] and ppl["eng"] < ppl["mnx"]
    texts = probes.heldout_texts(world, "tbx", 10)
    train = world.corpus("tbx").read_text(encoding="utf-8")
    assert len(texts) == 10 and not any(t in train for t in texts)
    with pytest.raises(ValueError, match="allowed"):
        probes.heldout_texts(world, "xyz")
