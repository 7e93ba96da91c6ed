"""Training data: documents, packed fixed-length sequences, deterministic blending, response-only SFT examples.

Blending follows Megatron-LM's ``BlendedDataset`` (the paper's trainer): sequence i comes from the source whose
count lags its target share the most, so after n sequences every source is within one sequence of its share.
All packed sequences have the same length, so a share of sequences is exactly a share of tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch

from lrmerge.train.config import CorpusSource

IGNORE_INDEX = -100  # label of tokens that carry no loss (prompt, padding)


def iter_documents(source: CorpusSource | str | Path | Iterable[str]) -> Iterator[str]:
    """Documents of a corpus: lines of a UTF-8 file, a hub dataset's text field (streamed), or strings."""
    if isinstance(source, (str, Path)):
        source = CorpusSource(path=Path(source))
    if isinstance(source, CorpusSource):
        if source.path is not None:
            with open(source.path, encoding="utf-8") as handle:
                for line in handle:
                    line = line.rstrip("\n")
                    if line.strip():
                        yield line
            return
        from datasets import load_dataset  # only real runs stream from the hub

        stream = load_dataset(source.hub_id, source.hub_config, split=source.split, streaming=True)
        for record in stream:
            if source.text_field not in record:
                raise KeyError(f"{source.describe()}: no field {source.text_field!r} (fields: {sorted(record)})")
            yield record[source.text_field]
        return
    yield from source


def pack_documents(documents: Iterable[str], tokenizer, seq_len: int, repeat: bool = False) -> Iterator[list[int]]:
    """Concatenate tokenized documents (bos + text, as the tokenizer encodes them), each followed by eos, and cut into chunks of ``seq_len`` token ids.

    ``repeat`` restarts the documents when they run out (small demo corpora: several epochs over X).
    ``documents`` must then be re-iterable (a list, a CorpusSource, a path).
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos token; packing needs one to separate documents")
    buffer: list[int] = []
    while True:
        produced = False
        for doc in iter_documents(documents):
            buffer.extend(tokenizer(doc)["input_ids"])  # with bos, as BASE's pre-training and evaluation see text
            buffer.append(tokenizer.eos_token_id)
            while len(buffer) >= seq_len:
                produced = True
                yield buffer[:seq_len]
                buffer = buffer[seq_len:]
        if not repeat:
            return
        if not produced and not buffer:
            raise ValueError(f"corpus {documents!r} is empty")


def iter_blend(shares: Sequence[float], n: int) -> Iterator[int]:
    """Source index of each of ``n`` sequences; source j gets within one sequence of shares[j] * k in every prefix k."""
    total = float(sum(shares))
    if total <= 0 or any(s < 0 for s in shares):
        raise ValueError(f"shares must be non-negative with a positive sum, got {list(shares)}")
    weights = [s / total for s in shares]
    counts = [0] * len(weights)
    for i in range(n):
        j = max(range(len(weights)), key=lambda k: weights[k] * (i + 1) - counts[k])  # ties: lowest index
        counts[j] += 1
        yield j


def blend_schedule(shares: Sequence[float], n: int) -> list[int]:
    return list(iter_blend(shares, n))


class BlendedLMDataset(torch.utils.data.IterableDataset):
    """Packed LM sequences from several corpora blended by share; deterministic, so a resumed run sees the same data.

    Yields ``{"input_ids", "labels", "source"}`` (labels = input ids; the model shifts them).
    """

    def __init__(self, sources: Sequence, shares: Sequence[float], tokenizer, seq_len: int, n_sequences: int):
        if len(sources) != len(shares):
            raise ValueError(f"{len(sources)} sources but {len(shares)} shares")
        self.sources, self.shares = list(sources), list(shares)
        self.tokenizer, self.seq_len, self.n_sequences = tokenizer, seq_len, n_sequences

    def __len__(self) -> int:
        return self.n_sequences

    def __iter__(self) -> Iterator[dict]:
        streams = [pack_documents(src, self.tokenizer, self.seq_len, repeat=True) if share > 0 else None
                   for src, share in zip(self.sources, self.shares)]
        for j in iter_blend(self.shares, self.n_sequences):
            ids = torch.tensor(next(streams[j]), dtype=torch.long)  # (seq_len,)
            yield {"input_ids": ids, "labels": ids.clone(), "source": j}


def read_sft_jsonl(path: str | Path) -> list[dict]:
    """SFT records ``{"prompt", "response", "task", "lang"}``; a bad line raises naming the file and line."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            for key in ("prompt", "response"):
                if not isinstance(record.get(key), str):
                    raise ValueError(f"{path}:{lineno}: field {key!r} missing or not a string")
            records.append(record)
    if not records:
        raise ValueError(f"{path}: no SFT records")
    return records


def tokenize_sft(record: dict, tokenizer, max_len: int) -> dict:
    """bos + prompt + response + eos (the prompt tokenized as evaluation tokenizes it); labels are -100 on prompt
    tokens so only the response carries loss."""
    return tokenize_sft_records([record], tokenizer, max_len)[0]


def tokenize_sft_records(records: list[dict], tokenizer, max_len: int) -> list[dict]:
    """`tokenize_sft` for every record, with one tokenizer call for the prompts and one for the responses."""
    if not records:
        return []
    prompts = tokenizer([r["prompt"] for r in records])["input_ids"]
    responses = tokenizer([r["response"] for r in records], add_special_tokens=False)["input_ids"]
    examples = []
    for prompt, response in zip(prompts, responses):
        response = response + [tokenizer.eos_token_id]
        examples.append({"input_ids": (prompt + response)[:max_len],
                         "labels": ([IGNORE_INDEX] * len(prompt) + response)[:max_len]})
    return examples


def collate_padded(examples: list[dict], pad_token_id: int) -> dict:
    """Right-pad a batch; padding gets label -100 and attention 0."""
    width = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)  # (batch, width)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[row, :n] = torch.as_tensor(e["input_ids"])
        labels[row, :n] = torch.as_tensor(e["labels"])
        attention[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def collate_scored_suffix(examples: list[dict], pad_token_id: int) -> dict:
    """Left-pad a batch so that every example's labelled tokens (the response) sit in its last K positions, and
    ask the model for logits there only (``logits_to_keep=K``, labels cut to the same K columns): the vocabulary
    projection and its gradient skip the prompts, which carry no loss. Position ids count real tokens from 0, so
    the loss equals `collate_padded`'s up to float rounding (tests/test_train_data.py)."""
    width = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)  # (batch, width), left-padded
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    keep = 1
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[row, width - n:] = torch.as_tensor(e["input_ids"])
        labels[row, width - n:] = torch.as_tensor(e["labels"])
        attention[row, width - n:] = 1
        first = next((i for i, label in enumerate(e["labels"]) if label != IGNORE_INDEX), None)
        if first is not None:  # logits from the position before the first labelled token on
            keep = max(keep, n - first + 1)
    keep = min(keep, width)
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": attention, "position_ids": position_ids,
            "labels": labels[:, width - keep:], "logits_to_keep": keep}