"""Probes of the demo study's science: held-out perplexity and word-translation retrieval from hidden states.

heldout_perplexity: token perplexity of a language's SIB-style dev texts (the leak guard keeps them out of every
training corpus), so it measures how well a checkpoint models unseen text of that language.

translation_retrieval: each enciphered X word the language's CT corpus contains (words CT never shows cannot be
learnt from it; loanwords, names and digits are excluded since they are the English strings) is run on its own
through the model; its hidden state per layer (`pooling`: mean over the word's tokens, or its last token, the
only one a causal model has seen the whole word at) is compared by cosine, after
mean-centring each side, with the hidden states of every English lexicon word. top1 is the share of queries whose
nearest English word is their translation, at the best layer. Chance is 1 / (number of English words).
The result also splits top1 by how the base tokenizer spells each query: one token (a whole-word token, as every
tbx word of the demo is) or several (letters or bytes, as every mnx word is). Measured on the demo, that split is
what decides retrieval: with whole-word tokens tbx reaches 47.7% at layer 0; with tbx spelled letter by letter
(a vocabulary of 900, `experiments/retrieval_vs_tokenization.py`) the same world reaches 7.5%, the level of the
byte-spelled mnx (4.6%).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Literal

import torch

Pooling = Literal["mean", "last"]
POOLINGS: tuple[str, ...] = ("mean", "last")


def _load(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return model, tokenizer


def heldout_texts(world, lang: str, n_texts: int = 200) -> list[str]:
    """Held-out text of a language: its SIB-style dev texts, then test texts (never in any training corpus)."""
    from lrmerge.demo.config import FLORES_CODE, LANGUAGES

    if lang not in FLORES_CODE:
        raise ValueError(f"unknown language {lang!r}; allowed: {LANGUAGES}")
    folder = Path(world.eval_dir) / "sib200" / FLORES_CODE[lang]
    texts = []
    for split in ("dev", "test"):
        path = folder / f"{split}.tsv"
        if not path.exists():
            raise FileNotFoundError(f"held-out text {path} is missing (was {lang!r} built into this world?)")
        with open(path, encoding="utf-8", newline="") as handle:
            texts += [row["text"] for row in csv.DictReader(handle, delimiter="\t")]
    return texts[:n_texts]


@torch.no_grad()
def heldout_perplexity(model_dir, world, lang: str, n_texts: int = 200) -> float:
    from lrmerge.eval.perplexity import perplexity

    texts = heldout_texts(world, lang, n_texts)
    model, tokenizer = _load(model_dir)
    return perplexity(model, tokenizer, texts)


@torch.no_grad()
def word_states(model, tokenizer, words: list[str], pooling: Pooling = "mean") -> torch.Tensor:
    """Hidden states of each word on its own after <s>, pooled over its tokens.  # (n_layers + 1, n_words, hidden)"""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; allowed: {POOLINGS}")
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    states = []
    for word in words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        hidden = model(input_ids=torch.tensor([bos + ids]), output_hidden_states=True).hidden_states
        pooled = [h[0, -1] if pooling == "last" else h[0, len(bos):].mean(0) for h in hidden]
        states.append(torch.stack(pooled))  # (n_layers + 1, hidden)
    return torch.stack(states, 1)


def retrieval_hits(x_states: torch.Tensor, en_states: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Per layer and query: is the nearest English word by cosine (each side mean-centred) `gold`?  # (n_layers, n_x)

    x_states (n_layers, n_x, hidden), en_states (n_layers, n_en, hidden), gold (n_x,) indices into en_states.
    """
    if x_states.shape[0] != en_states.shape[0] or x_states.shape[-1] != en_states.shape[-1]:
        raise ValueError(f"x_states {tuple(x_states.shape)} and en_states {tuple(en_states.shape)} differ in "
                         "layers or hidden size")
    if gold.shape != (x_states.shape[1],):
        raise ValueError(f"gold has shape {tuple(gold.shape)}, expected ({x_states.shape[1]},)")
    x = torch.nn.functional.normalize(x_states - x_states.mean(1, keepdim=True), dim=-1)  # (n_layers, n_x, hidden)
    e = torch.nn.functional.normalize(en_states - en_states.mean(1, keepdim=True), dim=-1)  # (n_layers, n_en, hidden)
    return (x @ e.transpose(1, 2)).argmax(-1) == gold  # (n_layers, n_x)


def retrieval_accuracy(x_states: torch.Tensor, en_states: torch.Tensor, gold: torch.Tensor) -> list[float]:
    """Per layer: share of queries whose nearest English word is `gold` (see `retrieval_hits`)."""
    return [_share(layer) for layer in retrieval_hits(x_states, en_states, gold)]


def _share(hits: torch.Tensor) -> float | None:
    """Share of True in a bool tensor; None when it is empty."""
    return float(hits.float().mean()) if hits.numel() else None


def read_lexicon(world, lang: str) -> list[dict]:
    """Rows of world.lexicon ({"eng": ..., lang: ...}); raises naming the file when `lang` has no column."""
    path = Path(world.lexicon)
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows or "eng" not in rows[0] or lang not in rows[0]:
        columns = tuple(rows[0]) if rows else ()
        raise ValueError(f"{path}: needs columns 'eng' and {lang!r}, has {columns}")
    return rows


def corpus_words(path: str | Path) -> set[str]:
    """Surface words of a corpus (split at spaces and the mnx particle joiner U+202F)."""
    text = Path(path).read_text(encoding="utf-8")
    return set(re.split(r"[\s\u202f]+", text))


def retrieval_queries(world, lang: str) -> tuple[list[str], list[str], list[int]]:
    """(English candidates, X query words, gold index per query): enciphered words the CT corpus contains."""
    rows = read_lexicon(world, lang)
    english = [row["eng"] for row in rows]
    seen = corpus_words(world.corpus(lang))
    queries = [row for row in rows if row[lang] != row["eng"] and row[lang] in seen]
    if not queries:
        raise ValueError(f"{world.lexicon}: no enciphered {lang!r} word occurs in {world.corpus(lang)}")
    return english, [row[lang] for row in queries], [english.index(row["eng"]) for row in queries]


def translation_retrieval(model_dir, world, lang: str, pooling: Pooling = "mean") -> dict:
    """Top-1 retrieval of the English translation of X words, best layer (see the module docstring)."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; allowed: {POOLINGS}")
    english, queries, gold = retrieval_queries(world, lang)
    model, tokenizer = _load(model_dir)
    hits = retrieval_hits(word_states(model, tokenizer, queries, pooling),
                          word_states(model, tokenizer, english, pooling), torch.tensor(gold))  # (n_layers, n_x)
    per_layer = [_share(layer) for layer in hits]
    best = max(range(len(per_layer)), key=per_layer.__getitem__)
    single = torch.tensor([len(tokenizer.tokenize(word)) == 1 for word in queries])  # (n_x,)
    return {"top1": per_layer[best], "best_layer": best, "chance": 1.0 / len(english), "n_queries": len(queries),
            "per_layer": per_layer, "single_token_queries": int(single.sum()),
            "top1_single_token": _share(hits[best][single]), "top1_multi_token": _share(hits[best][~single])}
