"""Packing, deterministic replay blending, response-only SFT labels (brute-force references)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import torch.nn.functional as F

from lrmerge.train.data import (
    IGNORE_INDEX, BlendedLMDataset, blend_schedule, collate_padded, collate_scored_suffix, pack_documents,
    read_sft_jsonl, tokenize_sft, tokenize_sft_records,
)
from lrmerge.train.tiny import build_tiny_tokenizer, tiny_corpora, tiny_sft_records


@pytest.fixture(scope="module")
def tokenizer():
    english, x = tiny_corpora(100)
    return build_tiny_tokenizer(english + x + [r["prompt"] + r["response"] for r in tiny_sft_records()], 384)


@pytest.mark.parametrize("share", [0.25, 0.1, 0.5, 1 / 3, 0.0])
def test_blend_schedule_within_one_sequence_of_share_in_every_prefix(share):
    order = blend_schedule([1 - share, share], 997)
    replay = 0
    for k, j in enumerate(order, 1):
        replay += j == 1
        assert abs(replay - share * k) <= 1.0
    assert abs(replay / len(order) - share) < 0.01


def test_blend_schedule_is_deterministic_and_rejects_bad_shares():
    assert blend_schedule([0.7, 0.2, 0.1], 50) == blend_schedule([0.7, 0.2, 0.1], 50)
    with pytest.raises(ValueError, match="shares"):
        blend_schedule([0.0, 0.0], 3)


def test_pack_documents_is_concatenation_with_eos_cut_into_chunks(tokenizer):
    docs = tiny_corpora(30)[1]
    chunks = list(pack_documents(docs, tokenizer, 16))
    stream = []
    for doc in docs:  # brute force: the whole token stream
        stream += tokenizer(doc, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert all(len(c) == 16 for c in chunks)
    assert [t for c in chunks for t in c] == stream[: 16 * (len(stream) // 16)]


def test_blended_dataset_replay_token_share_within_one_percent(tokenizer):
    english, x = tiny_corpora(60)
    seq_len = 24
    data = BlendedLMDataset([x, english], [0.75, 0.25], tokenizer, seq_len, n_sequences=400)
    items = list(data)
    eng_tokens = {t for d in english for t in tokenizer(d, add_special_tokens=False)["input_ids"]}
    x_tokens = {t for d in x for t in tokenizer(d, add_special_tokens=False)["input_ids"]}
    replay_tokens = sum(int(it["input_ids"].numel()) for it in items if it["source"] == 1)
    total = sum(int(it["input_ids"].numel()) for it in items)
    assert len(items) == 400 and total == 400 * seq_len
    assert abs(replay_tokens / total - 0.25) < 0.01
    # the tag tells the truth: replay sequences are English text, the others X text (scripts do not share tokens)
    for it in items:
        ids = set(it["input_ids"].tolist()) - {tokenizer.eos_token_id}
        assert ids <= (eng_tokens if it["source"] == 1 else x_tokens)
    assert [it["input_ids"].tolist() for it in items[:50]] == [it["input_ids"].tolist() for it in list(data)[:50]]


def test_sft_labels_mask_exactly_the_prompt(tokenizer):
    record = tiny_sft_records(1)[0]
    ex = tokenize_sft(record, tokenizer, max_len=512)
    n_prompt = len(tokenizer(record["prompt"], add_special_tokens=False)["input_ids"])
    assert ex["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert ex["labels"][n_prompt:] == ex["input_ids"][n_prompt:]
    assert ex["input_ids"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ex["input_ids"][n_prompt:-1]) == record["response"]


@pytest.mark.parametrize("max_len", [512, 12])
def test_sft_records_tokenized_at_once_equal_one_by_one(tokenizer, max_len):
    records = tiny_sft_records(40, seed=3)
    one_by_one = []
    for r in records:  # brute force: one tokenizer call per prompt and per response
        prompt = tokenizer(r["prompt"])["input_ids"]
        response = tokenizer(r["response"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        one_by_one.append({"input_ids": (prompt + response)[:max_len],
                           "labels": ([IGNORE_INDEX] * len(prompt) + response)[:max_len]})
    assert tokenize_sft_records(records, tokenizer, max_len) == one_by_one
    assert tokenize_sft_records([], tokenizer, max_len) == []


def test_sft_loss_is_response_only_brute_force_and_gradient(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4))
    records = tiny_sft_records(3, seed=5)
    examples = [tokenize_sft(r, tokenizer, 512) for r in records]
    batch = collate_padded(examples, tokenizer.pad_token_id)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.detach()
    logits.requires_grad_(True)
    loss = model.loss_function(logits=logits, labels=batch["labels"], vocab_size=len(tokenizer))
    # brute force: mean NLL of response tokens (and eos) only, each predicted from the previous position
    nll, count = 0.0, 0
    for row, (ex, record) in enumerate(zip(examples, records)):
        n_prompt = len(tokenizer(record["prompt"], add_special_tokens=False)["input_ids"])
        for t in range(n_prompt, len(ex["input_ids"])):
            nll -= F.log_softmax(logits[row, t - 1].double(), -1)[ex["input_ids"][t]].item()
            count += 1
    assert loss.item() == pytest.approx(nll / count, rel=1e-5)
    loss.backward()
    for row, record in enumerate(records):
        n_prompt = len(tokenizer(record["prompt"], add_special_tokens=False)["input_ids"])
        # positions predicting prompt tokens get no gradient; the one predicting the first response token does
        assert torch.count_nonzero(logits.grad[row, : n_prompt - 1]) == 0
        assert torch.count_nonzero(logits.grad[row, n_prompt - 1]) > 0
    # padding carries no loss either
    assert batch["labels"][batch["attention_mask"] == 0].eq(IGNORE_INDEX).all()


def test_read_sft_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'response'"):
        read_sft_jsonl(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not valid JSON"):
        read_sft_jsonl(path)


@pytest.mark.parametrize("with_replay", [False, True])
def test_response_only_logits_give_the_full_loss_and_gradients(tokenizer, with_replay):
    """`collate_scored_suffix` (left padding, logits only where labels are) against right padding with logits
    everywhere: the same loss and the same parameter gradients, prompts of different lengths in one batch, and a
    replay sequence (every token labelled) that forces all positions."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4))
    examples = [tokenize_sft(r, tokenizer, 512) for r in tiny_sft_records(5, seed=7)]
    if with_replay:
        ids = max((e["input_ids"] for e in examples), key=len)  # as long as the longest example
        examples.append({"input_ids": ids, "labels": list(ids)})
    lengths = {len(e["input_ids"]) for e in examples}
    assert len(lengths) > 1  # padding is exercised

    def loss_and_grads(batch):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    full_loss, full_grads = loss_and_grads(collate_padded(examples, tokenizer.pad_token_id))
    batch = collate_scored_suffix(examples, tokenizer.pad_token_id)
    width = batch["input_ids"].shape[1]
    assert batch["labels"].shape[1] == batch["logits_to_keep"]
    assert (batch["logits_to_keep"] == width) == with_replay  # a fully labelled row needs every position
    suffix_loss, suffix_grads = loss_and_grads(batch)
    assert suffix_loss == pytest.approx(full_loss, rel=1e-5)
    for full, suffix in zip(full_grads, suffix_grads):
        assert torch.allclose(full, suffix, atol=1e-6, rtol=1e-4)
