"""Tiny models for tests and speed checks: a byte-level BPE tokenizer trained on a few texts, a small Llama."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch


def build_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """Byte-level BPE (every UTF-8 string encodable) wrapped as a PreTrainedTokenizerFast with eos/pad/bos."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>"]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def build_tiny_llama(folder: str | Path, tokenizer, hidden: int = 64, layers: int = 2, heads: int = 4,
                     max_positions: int = 512, seed: int = 0) -> Path:
    """Randomly initialised LlamaForCausalLM saved with its tokenizer (loadable by AutoModelForCausalLM)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


_EN_WORDS = "the a cat dog bird sat ran sang on under near mat home tree river far away while and then".split()
_X_WORDS = "கல் மரம் நீர் வானம் பூமி காற்று நெருப்பு மலை கடல் நதி பறவை வீடு".split()  # Tamil script


def tiny_corpora(n_docs: int = 200, seed: int = 0) -> tuple[list[str], list[str]]:
    """(English documents, X documents) of random words; X in Tamil script so byte lengths differ from English."""
    import random

    rng = random.Random(seed)

    def doc(words: list[str]) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(4, 40)))

    return [doc(_EN_WORDS) for _ in range(n_docs)], [doc(_X_WORDS) for _ in range(n_docs)]


def tiny_sft_records(n: int = 64, seed: int = 0) -> list[dict]:
    """Prompt/response records in the SFT JSONL schema (addition questions)."""
    import random

    rng = random.Random(seed)
    records = []
    for _ in range(n):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        records.append({"prompt": f"Question: what is {a} plus {b}?\nAnswer:", "response": f" The answer is {a + b}.",
                        "task": "math", "lang": "eng"})
    return records


def write_tiny_world(root: str | Path, hidden: int = 64, layers: int = 2, vocab_size: int = 384) -> dict[str, Path]:
    """Corpora (one document per line), an SFT JSONL and a tiny BASE model folder under ``root``."""
    import json

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    english, x = tiny_corpora()
    paths = {"en": root / "en_replay.txt", "x": root / "x.txt", "sft": root / "sft.jsonl", "base": root / "base"}
    paths["en"].write_text("\n".join(english) + "\n", encoding="utf-8")
    paths["x"].write_text("\n".join(x) + "\n", encoding="utf-8")
    paths["sft"].write_text("".join(json.dumps(r) + "\n" for r in tiny_sft_records()), encoding="utf-8")
    tokenizer = build_tiny_tokenizer(english + x + [r["prompt"] + r["response"] for r in tiny_sft_records()], vocab_size)
    build_tiny_llama(paths["base"], tokenizer, hidden=hidden, layers=layers)
    return paths
