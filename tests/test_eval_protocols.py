"""Both scoring protocols from one prefill: the letters' log-likelihoods read off the first generation step equal
`mode="loglik"` exactly, the generations equal `mode="generate"`; math is generation only; caches per protocol."""

import pytest
import torch

from lrmerge.data.schema import ChoiceItem, ClassificationItem, MathItem
from lrmerge.eval.runner import evaluate_task, evaluate_task_protocols, prompt_continuations
from lrmerge.eval.tasks import SIB200_LABELS, task_for
from lrmerge.eval.testing import tiny_llama, tiny_tokenizer


@pytest.fixture(scope="module")
def tok_model(quick_world_source):
    """The quick demo world's tokenizer (option letters are single tokens) and BASE."""
    from lrmerge.eval.runner import load_model

    model, tokenizer = load_model(quick_world_source.base, "cpu")
    return tokenizer, model


def _items():
    topics = [ClassificationItem(f"t{i}", f"the {w} of one", label)
              for i, (w, label) in enumerate(zip(["sports", "travel", "one", "the"], SIB200_LABELS))]
    choices = [ChoiceItem(f"c{i}", f"the travel {i}", "is it?", ("one", "two", "the", "of")[: 2 + i % 3], i % 2)
               for i in range(4)]
    return topics, choices


@pytest.mark.parametrize("kind", ["sib200", "belebele"])
def test_one_prefill_equals_the_two_separate_protocols(tok_model, kind):
    tokenizer, model = tok_model
    topics, choices = _items()
    spec, items = (task_for("sib200", "eng"), topics) if kind == "sib200" else (task_for("belebele", "eng"), choices)
    prompt = spec.build_prompt(items[0], SIB200_LABELS if kind == "sib200" else None)[0]
    assert prompt_continuations(tokenizer, prompt, [" A", " B", " C", " D"]) is not None  # the fused path
    both = evaluate_task_protocols(model, tokenizer, spec, items, ["loglik", "generate"], 2, torch.device("cpu"),
                                   progress=False)
    loglik = evaluate_task(model, tokenizer, spec, items, "loglik", 2, torch.device("cpu"), progress=False)
    generate = evaluate_task(model, tokenizer, spec, items, "generate", 2, torch.device("cpu"), progress=False)
    for fused, alone in zip(both["loglik"].records, loglik.records):
        assert fused["parsed"] == alone["parsed"] and fused["scores"] == pytest.approx(alone["scores"], abs=1e-5)
    assert [r["generation"] for r in both["generate"].records] == [r["generation"] for r in generate.records]
    assert both["loglik"].accuracy == loglik.accuracy and both["generate"].n_unparsable == generate.n_unparsable


def test_multi_token_letters_share_the_prefill_and_merged_ones_fall_back(tok_model):
    tokenizer, model = tok_model
    assert prompt_continuations(tokenizer, "Answer: ", [" A"]) is None  # the trailing space joins the answer
    byte_tokenizer = tiny_tokenizer()  # no single-token " A": letters are two tokens, still scored off the prefill
    tiny = tiny_llama(byte_tokenizer, hidden_size=32, num_layers=1, seed=3)
    topics, _ = _items()
    spec = task_for("sib200", "eng")
    conts = prompt_continuations(byte_tokenizer, spec.build_prompt(topics[0])[0], spec.option_continuations(topics[0]))
    assert conts is not None and {len(c) for c in conts} == {1, 2}
    both = evaluate_task_protocols(tiny, byte_tokenizer, spec, topics, ["loglik", "generate"], 2, torch.device("cpu"),
                                   progress=False)
    alone = evaluate_task(tiny, byte_tokenizer, spec, topics, "loglik", 2, torch.device("cpu"), progress=False)
    for fused, single in zip(both["loglik"].records, alone.records):
        assert fused["scores"] == pytest.approx(single["scores"], abs=1e-5) and fused["parsed"] == single["parsed"]


def test_math_is_generation_only(tok_model):
    tokenizer, model = tok_model
    items = [MathItem("m0", "1 plus 1", 2), MathItem("m1", "2 plus 2", 4)]
    out = evaluate_task_protocols(model, tokenizer, task_for("mgsm", "eng", max_new_tokens=4), items,
                                  ["loglik", "generate"], 2, torch.device("cpu"), progress=False)
    assert list(out) == ["generate"] and out["generate"].n == 2


def test_a_limited_evaluation_spreads_over_a_sorted_file():
    from lrmerge.eval.runner import spaced_subset

    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 20  # sorted by label, as SIB-200's test file is
    picked = spaced_subset(labels, 10)
    assert len(picked) == 10 and picked.count("a") == 5 and picked.count("b") == 3 and picked.count("c") == 2
    assert spaced_subset(labels, None) == labels and spaced_subset(labels, 500) == labels


def test_letter_text_answers_score_the_letter_and_the_option_text(tok_model):
    """With `answer="letter_text"` the log-likelihood protocol scores " B. <option>" (brute force: one forward pass
    per option over prompt + continuation), generation is still read by its letter, and both protocols agree with
    scoring each alone."""
    from lrmerge import prompts
    from lrmerge.eval.generate import split_context_continuation

    tokenizer, model = tok_model
    _, choices = _items()
    spec = task_for("belebele", "eng", answer="letter_text")
    assert spec.option_continuations(choices[1]) == [" A. one", " B. two", " C. the"]
    both = evaluate_task_protocols(model, tokenizer, spec, choices, ["loglik", "generate"], 2, torch.device("cpu"),
                                   progress=False)
    for item, record in zip(choices, both["loglik"].records):
        prompt = spec.build_prompt(item)[0]
        expected = []
        for i, option in enumerate(item.options):
            ctx, cont = split_context_continuation(tokenizer, prompt, prompts.choice_answer(i, option, "letter_text"))
            with torch.no_grad():
                logprobs = torch.log_softmax(model(input_ids=torch.tensor([ctx + cont])).logits[0].float(), dim=-1)
            expected.append(sum(logprobs[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont)))
        assert record["scores"] == pytest.approx(expected, abs=1e-4)
        assert record["parsed"] == "ABCD"[max(range(len(expected)), key=expected.__getitem__)]
    letters = evaluate_task(model, tokenizer, task_for("belebele", "eng"), choices, "loglik", 2, torch.device("cpu"),
                            progress=False)
    assert [r["scores"] for r in letters.records] != [r["scores"] for r in both["loglik"].records]
    generate = evaluate_task(model, tokenizer, spec, choices, "generate", 2, torch.device("cpu"), progress=False)
    assert [r["parsed"] for r in generate.records] == [r["parsed"] for r in both["generate"].records]
    with pytest.raises(ValueError, match="unknown answer format 'words'"):
        task_for("belebele", "eng", answer="words")
