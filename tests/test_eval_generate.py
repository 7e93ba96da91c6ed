import argparse
import json

import pytest
import torch

from lrmerge.data.schema import ChoiceItem, ClassificationItem, MathItem
from lrmerge.eval.generate import _shared_prefix, encode, greedy_generate, tokenizer_fingerprint, loglik_scores, split_context_continuation
from lrmerge.eval.runner import evaluate, write_results
from lrmerge.eval.tasks import SIB200_LABELS, task_for
from lrmerge.eval.testing import tiny_llama, tiny_tokenizer
from lrmerge.runs import read_run_record

PROMPTS = [
    "Classify the topic of the text.\nText: the sports\nAnswer:",
    "Solve.",
    "Read the passage and answer the question.\nPassage: the travel of one\nQuestion: is it?\nAnswer:",
    "The answer is",
    "0 1 2 3 4 5",
]


@pytest.fixture(scope="module")
def tok_model():
    tokenizer = tiny_tokenizer()
    return tokenizer, tiny_llama(tokenizer, hidden_size=48, num_layers=2, seed=1)


def _hf_greedy(model, tokenizer, prompt, max_new_tokens):
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def test_batched_greedy_equals_one_by_one_hf_generate(tok_model):
    tokenizer, model = tok_model
    batched = greedy_generate(model, tokenizer, PROMPTS, max_new_tokens=10, batch_size=4, progress=False)
    for prompt, generation in zip(PROMPTS, batched):
        reference = _hf_greedy(model, tokenizer, prompt, 10)
        reference = reference[:reference.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in reference else reference
        assert generation.token_ids == reference
        assert generation.text == tokenizer.decode(reference, skip_special_tokens=True)


def test_stop_strings_cut_text_and_drop_rows_exactly(tok_model):
    tokenizer, model = tok_model
    free = greedy_generate(model, tokenizer, PROMPTS, max_new_tokens=12, batch_size=5, progress=False)
    # a stop string taken from the middle of one answer: that row stops early, the others continue unchanged
    stop = free[0].text[3:5]
    assert stop.strip()
    stopped = greedy_generate(model, tokenizer, PROMPTS, max_new_tokens=12, stop=[stop], batch_size=5, progress=False)
    one_by_one = [greedy_generate(model, tokenizer, [p], 12, [stop], batch_size=1, progress=False)[0] for p in PROMPTS]
    assert [g.token_ids for g in stopped] == [g.token_ids for g in one_by_one]
    assert stopped[0].finish == "stop" and stopped[0].text == free[0].text[:free[0].text.index(stop)]
    for before, after in zip(free, stopped):
        if stop not in before.text:
            assert after.token_ids == before.token_ids and after.finish == before.finish
        else:
            assert stop not in after.text and before.text.startswith(after.text)


def _brute_force_loglik(model, tokenizer, context, continuation):
    ctx, cont = split_context_continuation(tokenizer, context, continuation)
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(logprobs[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont))


@pytest.mark.parametrize("continuations", [[" A", " B", " C", " D"], [" the sports", " travel", " health of one", " A"]])
def test_loglik_matches_brute_force(tok_model, continuations):
    tokenizer, model = tok_model
    requests = [(p, continuations) for p in PROMPTS]
    scores = loglik_scores(model, tokenizer, requests, batch_size=3, progress=False)
    for (context, conts), row in zip(requests, scores):
        expected = [_brute_force_loglik(model, tokenizer, context, c) for c in conts]
        assert row == pytest.approx(expected, abs=1e-4)


def test_loglik_runs_each_context_once_and_shares_option_rows(tok_model):
    tokenizer, model = tok_model
    letters = [" A", " B", " C", " D"]
    # in the tiny vocabulary some letters are one token ("▁A") and others two ("▁", "B"): the context runs once,
    # and the two-token letters share one one-token row ("▁") through its KV cache
    assert {len(split_context_continuation(tokenizer, PROMPTS[0], c)[1]) for c in letters} == {1, 2}
    shapes = []
    handle = model.register_forward_pre_hook(lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)),
                                             with_kwargs=True)
    try:
        loglik_scores(model, tokenizer, [(p, letters) for p in PROMPTS], batch_size=1, progress=False)
    finally:
        handle.remove()
    contexts = [tuple(split_context_continuation(tokenizer, p, " B")[0]) for p in PROMPTS]
    assert sorted(s for s in shapes if s[1] > 1) == sorted((1, len(c)) for c in contexts)
    assert sorted(s for s in shapes if s[1] == 1) == [(1, 1)] * len(PROMPTS)


def test_loglik_long_options_attend_to_one_context_pass(tok_model):
    """Option texts of several tokens: one prefill per batch of contexts plus one row per option, not one
    context-long row per option (lm-eval's cost), with the brute-force scores."""
    tokenizer, model = tok_model
    options = [" A. the sports of one", " B. travel is", " C. health", " D. the politics"]
    tokens = []
    handle = model.register_forward_pre_hook(lambda module, args, kwargs: tokens.append(kwargs["input_ids"].numel()),
                                             with_kwargs=True)
    try:
        scores = loglik_scores(model, tokenizer, [(p, options) for p in PROMPTS], batch_size=5, progress=False)
    finally:
        handle.remove()
    assert len(tokens) == 2
    longest_context = max(len(split_context_continuation(tokenizer, p, options[0])[0]) for p in PROMPTS)
    longest_option = max(len(split_context_continuation(tokenizer, p, o)[1]) for p in PROMPTS for o in options)
    assert tokens[0] == len(PROMPTS) * longest_context and tokens[1] <= len(PROMPTS) * 4 * longest_option
    for context, row in zip(PROMPTS, scores):
        assert row == pytest.approx([_brute_force_loglik(model, tokenizer, context, o) for o in options], abs=1e-4)


def test_encode_reuses_encodings_only_for_equal_tokenizers(tmp_path):
    import copy

    tok = tiny_tokenizer()
    texts = ["Topic: water", "the cat saw a dog", ""]
    expected = [list(ids) for ids in tok(texts)["input_ids"]]
    assert encode(tok, texts) == expected
    twin = copy.deepcopy(tok)
    assert tokenizer_fingerprint(twin) == tokenizer_fingerprint(tok)
    assert encode(twin, texts) == expected
    encode(tok, texts)[0].append(-1)  # callers may change what they get: the memo keeps its own copy
    assert encode(tok, texts) == expected
    other = copy.deepcopy(tok)
    other.add_tokens(["the cat"])  # another tokenization of the same text
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tok)
    assert encode(other, texts) == [list(ids) for ids in other(texts)["input_ids"]] != expected
    assert encode(tok, texts, add_special_tokens=False) == [list(ids) for ids in
                                                             tok(texts, add_special_tokens=False)["input_ids"]]


def test_shared_prefix_matches_brute_force():
    import random

    rng = random.Random(0)
    for _ in range(500):
        stem = [rng.randrange(4) for _ in range(rng.randrange(6))]
        seqs = [stem + [rng.randrange(4) for _ in range(rng.randrange(5))] for _ in range(rng.randrange(1, 5))]
        limit = rng.randrange(8)
        expected = 0
        while expected < limit and all(len(s) > expected and s[expected] == seqs[0][expected] for s in seqs):
            expected += 1
        assert _shared_prefix(seqs, limit) == expected, (seqs, limit)


def test_split_context_continuation_moves_trailing_space(tok_model):
    tokenizer, _ = tok_model
    ctx, cont = split_context_continuation(tokenizer, "Answer: ", "A")
    assert ctx == split_context_continuation(tokenizer, "Answer:", " A")[0]
    assert tokenizer.decode(cont) .strip() == "A"


def _items():
    sib = [ClassificationItem(str(i), text, SIB200_LABELS[i % 7]) for i, text in enumerate(["the sports", "travel is", "one health", "politics"])]
    choice = [ChoiceItem(f"c{i}", "the passage", "which one?", ("a", "b", "c", "d"), i % 4) for i in range(3)]
    math = [MathItem(f"m{i}", f"{i} plus 1?", i + 1) for i in range(2)]
    return {"sib200_tbx": sib, "belebele_tbx": choice, "mgsm_tbx": math}


def test_evaluate_records_and_metrics_are_consistent(tok_model, tmp_path):
    tokenizer, model = tok_model
    items = _items()
    results = evaluate(model, list(items), tokenizer=tokenizer, items=items, batch_size=2, device="cpu", progress=False)
    for name, result in results.tasks.items():
        assert result.n == len(items[name]) == len(result.records)
        assert result.accuracy == sum(r["correct"] for r in result.records) / result.n
        assert result.n_unparsable == sum(r["parsed"] is None for r in result.records)
        for record in result.records:
            assert record["correct"] == (record["parsed"] is not None and float(record["parsed"]) == float(record["gold"])
                                         if name.startswith("mgsm") else record["parsed"] == record["gold"])
    assert [r["gold"] for r in results.tasks["sib200_tbx"].records] == ["A", "B", "C", "D"]
    folder = write_results(results, tmp_path / "out")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["mgsm_tbx"]["n"] == 2 and "records" not in metrics["mgsm_tbx"]
    lines = (folder / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 9 and json.loads(lines[0])["task"] == "sib200_tbx"
    assert read_run_record(folder)["config"]["tasks"] == list(items)
    with pytest.raises(FileExistsError):
        write_results(results, folder)


def test_evaluate_loglik_mode_and_cache_resume(tok_model, tmp_path, monkeypatch):
    tokenizer, model = tok_model
    items = _items()
    tasks = ["sib200_tbx", "belebele_tbx"]
    first = evaluate(model, tasks, tokenizer=tokenizer, items=items, mode="loglik", device="cpu", progress=False,
                     cache_dir=tmp_path / "parts")
    expected = [max(range(4), key=lambda o: _brute_force_loglik(model, tokenizer, *_pair(item, o))) for item in items["belebele_tbx"]]
    assert [r["parsed"] for r in first.tasks["belebele_tbx"].records] == ["ABCD"[e] for e in expected]
    assert len(list((tmp_path / "parts").glob("*.json"))) == 2
    import lrmerge.eval.runner as runner
    monkeypatch.setattr(runner, "evaluate_task", lambda *a, **k: pytest.fail("cached task was recomputed"))
    again = evaluate(model, tasks, tokenizer=tokenizer, items=items, mode="loglik", device="cpu", progress=False,
                     cache_dir=tmp_path / "parts")
    assert again.metrics() == first.metrics()
    monkeypatch.undo()
    with pytest.raises(ValueError, match="multiple-choice"):
        evaluate(model, ["mgsm_tbx"], tokenizer=tokenizer, items=items, mode="loglik", device="cpu", progress=False)
    with pytest.raises(ValueError, match="generate, loglik"):
        evaluate(model, tasks, tokenizer=tokenizer, items=items, mode="beam")


def _pair(item, option):
    prompt, _ = task_for("belebele", "tbx").build_prompt(item)
    return prompt, " " + "ABCD"[option]


def test_cli_writes_results(tok_model, tmp_path, monkeypatch):
    tokenizer, model = tok_model
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    import lrmerge.eval.runner as runner
    from lrmerge.eval import cli
    items = _items()
    monkeypatch.setattr(runner, "_load_items", lambda spec, split, source: (items[spec.name], None))
    parser = argparse.ArgumentParser()
    cli.configure_parser(parser)
    out = tmp_path / "eval"
    args = parser.parse_args(["--model", str(tmp_path / "model"), "--lang", "tbx", "--tasks", "sib200,mgsm",
                              "--out", str(out), "--device", "cpu", "--no-progress"])
    assert cli.run(args) == 0
    assert set(json.loads((out / "metrics.json").read_text())) == {"sib200_tbx", "mgsm_tbx"}
    assert not (tmp_path / ".eval.parts").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    evaluator = runner.make_evaluator(["sib200_tbx", "mgsm_tbx"], split="test", device="cpu", progress=False)
    assert evaluator(tmp_path / "model") == {name: m["accuracy"] for name, m in metrics.items()}
