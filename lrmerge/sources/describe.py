"""How BASE's tokenizer spells a language (the paper's section 4 / 8.1 observation): tokens per character and
the share of tokens that are bytes of a character rather than whole characters or words."""

from __future__ import annotations

from typing import Sequence

SAMPLE_DOCUMENTS = 200


def is_byte_token(tokenizer, token_id: int) -> bool:
    """A token that covers only part of a character (a UTF-8 byte): decoded alone it is not whole text."""
    return "\ufffd" in tokenizer.decode([token_id])


def tokenization_stats(tokenizer, documents: Sequence[str]) -> dict:
    """tokens, characters, tokens per character and byte-token share over (a sample of) the documents."""
    sample = list(documents[:SAMPLE_DOCUMENTS])
    if not sample:
        raise ValueError("no documents to describe")
    ids = [i for doc in sample for i in tokenizer(doc, add_special_tokens=False)["input_ids"]]
    chars = sum(len(doc) for doc in sample)
    cache: dict[int, bool] = {}
    byte_tokens = sum(cache.setdefault(i, is_byte_token(tokenizer, i)) for i in ids)
    return {"documents": len(sample), "characters": chars, "tokens": len(ids),
            "tokens_per_character": round(len(ids) / max(1, chars), 4),
            "tokens_per_document": round(len(ids) / len(sample), 1),
            "byte_token_share": round(byte_tokens / max(1, len(ids)), 4)}


def count_tokens(tokenizer, documents: Sequence[str]) -> int:
    return sum(len(ids) for ids in tokenizer(list(documents), add_special_tokens=False)["input_ids"])
