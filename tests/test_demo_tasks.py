"""The demo world's tasks carry signal by construction, and its MT system's knobs each do what they say."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest

from lrmerge.demo.config import profile_config
from lrmerge.demo.grammar import ClauseSampler, MTNoise, NoisyTranslator, build_collocations, render
from lrmerge.demo.lexicon import build_lexicon, topic_words
from lrmerge.demo.sft import english_instance
from lrmerge.demo.tasks import (render_item_texts, render_options, render_question, sample_math, sample_reading,
                                sample_selection, translate_plain)


@pytest.fixture(scope="module")
def world_parts():
    config = profile_config("quick")
    table = topic_words(config.n_topics, config.topic_nouns, config.topic_verbs)
    lexicon = build_lexicon(0, table, config.loanword_share)
    sampler = ClauseSampler(table, config.topic_purity, True, True, collocations=build_collocations(0, table),
                            collocation_strength=config.collocation_strength)
    return lexicon, sampler, list(table)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\s.?\u0f0d\u1803\u202f]+", text))


def test_reading_answer_is_the_only_option_in_the_passage(world_parts):
    lexicon, sampler, topics = world_parts
    rng = random.Random(0)
    for _ in range(200):
        item = sample_reading(rng, sampler, topics)
        for lang in ("eng", "tbx", "mnx"):
            passage = _words(render_item_texts(item, lang, lexicon)[0])
            options = render_options(item.options, lang, lexicon)
            assert [o in passage for o in options] == [i == item.answer for i in range(4)]
        # the question names the clause's subject (a name) and verb; the answer is that clause's object
        target = item.passage[item.target]
        assert item.options[item.answer] == target.object[-1]
        assert target.subject[0] in render_question(item, "eng", lexicon)


def test_reading_options_do_not_give_the_topic_away(world_parts):
    lexicon, sampler, topics = world_parts
    rng = random.Random(1)
    topical = {w for t in topics for w in sampler.topics[t][0]}
    answer_topical, distractor_topical = [], []
    for _ in range(400):
        item = sample_reading(rng, sampler, topics)
        for i, option in enumerate(item.options):
            (answer_topical if i == item.answer else distractor_topical).append(option in topical)
    # distractors come from every topic and the neutral nouns alike: no "pick the topical noun" shortcut
    assert 0.3 < sum(distractor_topical) / len(distractor_topical) < 0.9


def test_response_selection_needs_the_context(world_parts):
    """The right reply is a noun of the dialogue's topic; the four replies are nouns of four different topics and
    none of them is said in the dialogue, so without the context no reply stands out (and copying finds none)."""
    lexicon, sampler, topics = world_parts
    topic_of = {w: t for t in topics for w in sampler.topics[t][0]}
    rng = random.Random(2)
    for _ in range(200):
        item = sample_selection(rng, sampler, topics)
        assert item.context[0].topic == item.context[1].topic
        assert topic_of[item.options[item.answer]] == item.context[0].topic
        assert len({topic_of[o] for o in item.options}) == 4
        for lang in ("eng", "tbx", "mnx"):
            said = set().union(*(_words(render(c, lang, lexicon)) for c in item.context))
            assert not said & set(render_options(item.options, lang, lexicon))


def test_sft_mix_fills_each_task_share_exactly(world_parts):
    from lrmerge.demo.sft import SFT_TASK_MIX, flan_english
    from lrmerge.demo.tasks import LeakGuard

    lexicon, sampler, topics = world_parts
    rows = flan_english(200, 0, sampler, lexicon, topics, LeakGuard())
    counts = {task: sum(r["task"] == task for r in rows) for task in SFT_TASK_MIX}
    assert len(rows) == 200 and counts == {t: round(share * 200) for t, share in SFT_TASK_MIX.items()}
    assert [r["task"] for r in rows[:20]] != sorted(r["task"] for r in rows[:20])  # shuffled, not task blocks


@pytest.mark.parametrize("answer_format", ["letter", "letter_text"])
def test_choice_answers_are_written_as_the_world_says(world_parts, answer_format):
    from lrmerge.eval.parse import parse_letter

    lexicon, sampler, topics = world_parts
    rng = random.Random(6)
    for task in ("reading", "selection"):
        for _ in range(20):
            row, item = english_instance(task, rng, sampler, lexicon, topics, answer_format)
            letter = "ABCD"[item.answer]
            option = render_options(item.options, "eng", lexicon)[item.answer]
            assert row["response"] == (f" {letter}" if answer_format == "letter" else f" {letter}. {option}")
            assert parse_letter(row["response"], "ABCD") == letter  # generation is read the same way
    row, _ = english_instance("topic", rng, sampler, lexicon, topics, answer_format)
    assert re.fullmatch(r" [A-G]", row["response"])  # topic labels are always answered by letter


@pytest.mark.parametrize("max_operand", [5, 9])
def test_math_is_one_small_addition(world_parts, max_operand):
    rng = random.Random(3)
    problems = [sample_math(rng, max_operand) for _ in range(300)]
    assert {p.kind for p in problems} == {"add"}
    assert {p.a for p in problems} == set(range(1, max_operand + 1)) == {p.b for p in problems}
    assert all(p.answer == p.a + p.b for p in problems)
    assert all(str(p.a) in p.question() and str(p.b) in p.question() for p in problems)


def test_sft_instances_use_the_eval_prompts(world_parts):
    lexicon, sampler, topics = world_parts
    rng = random.Random(4)
    for task in ("topic", "reading", "selection", "math"):
        row, _ = english_instance(task, rng, sampler, lexicon, topics)
        assert row["prompt"].endswith("Answer:")


# ------------------------------------------------------------------------------------------------ the MT system

TEXT = "The young doctor treats the patient near the river in 1998."
KNOBS = ("mistranslation_rate", "hallucination_rate", "drop_rate", "repeat_rate", "untranslated_rate",
         "untranslated_options_rate")


def _instances(world_parts, n=120):
    lexicon, sampler, topics = world_parts
    rng = random.Random(5)
    return [english_instance(("topic", "reading", "selection")[i % 3], rng, sampler, lexicon, topics)[0]
            for i in range(n)]


def _translate_all(lexicon, noise, rows, lang="tbx"):
    mt = NoisyTranslator(lexicon, 0, noise)
    return [mt.translate_instance(r["prompt"], r["response"], lang) for r in rows]


@pytest.mark.parametrize("lang", ["tbx", "mnx"])
def test_zero_knobs_is_exact_word_by_word_translation(world_parts, lang):
    lexicon, _, _ = world_parts
    mt = NoisyTranslator(lexicon, 0, MTNoise())
    assert mt.translate([TEXT], "eng", lang) == [translate_plain(TEXT, lang, lexicon)]
    for row in _instances(world_parts, 30):
        prompt, response = mt.translate_instance(row["prompt"], row["response"], lang)
        assert prompt == mt.translate([row["prompt"]], "eng", lang)[0]  # no instance-level noise either
        passage = row["prompt"].split("\n")[1]
        assert prompt.split("\n")[1] == translate_plain(passage, lang, lexicon)


def test_tbx_zero_knobs_renders_clauses_as_the_grammar_does(world_parts):
    lexicon, sampler, topics = world_parts
    rng = random.Random(6)
    mt = NoisyTranslator(lexicon, 0, MTNoise())
    for _ in range(50):
        clause = sampler.clause(rng, rng.choice(topics))
        assert mt.translate([render(clause, "eng", lexicon)], "eng", "tbx")[0] == render(clause, "tbx", lexicon)


@pytest.mark.parametrize("knob", KNOBS + ("translate_answer_cue",))
def test_each_knob_measurably_changes_the_output(world_parts, knob):
    lexicon, _, _ = world_parts
    rows = _instances(world_parts)
    exact = _translate_all(lexicon, MTNoise(), rows)
    noisy_noise = MTNoise(translate_answer_cue=False) if knob == "translate_answer_cue" else MTNoise(**{knob: 0.5})
    noisy = _translate_all(lexicon, noisy_noise, rows)
    changed = sum(a != b for a, b in zip(exact, noisy)) / len(rows)
    assert changed > 0.2, f"{knob}=0.5 changed only {changed:.0%} of the instances"


def test_knob_semantics(world_parts):
    lexicon, _, _ = world_parts
    rows = _instances(world_parts)
    english_words = _words(" ".join(r["prompt"] for r in rows))
    # untranslated options: option lines stay exactly English
    kept = _translate_all(lexicon, MTNoise(untranslated_options_rate=1.0), rows)
    for row, (prompt, _) in zip(rows, kept):
        assert [l for l in prompt.split("\n") if re.match(r"^[A-D]\. ", l)] == \
               [l for l in row["prompt"].split("\n") if re.match(r"^[A-D]\. ", l)]
    # hallucination: one recurring sentence, added to every instance at rate 1
    mt = NoisyTranslator(lexicon, 0, MTNoise(hallucination_rate=1.0))
    sentence = mt.hallucination("tbx")
    assert all(sentence in mt.translate_instance(r["prompt"], r["response"], "tbx")[0] for r in rows)
    # mistranslation: consistent (same wrong word every time) and wrong
    mt = NoisyTranslator(lexicon, 0, MTNoise(mistranslation_rate=0.4))
    wrong = mt.wrong_words("tbx")
    assert wrong and all(x != lexicon.word(w, "tbx") for w, x in wrong.items())
    assert mt.translate(["the doctor"], "eng", "tbx") == mt.translate(["the doctor"], "eng", "tbx")
    # untranslated words leave English in the output; drops shorten it; repeats lengthen it
    left = _translate_all(lexicon, MTNoise(untranslated_rate=1.0), rows)
    assert all(_words(p) & english_words - {"Read", "Passage", "Question", "Options", "Classify", "Text"} for p, _ in left)
    exact = _translate_all(lexicon, MTNoise(), rows)
    dropped = _translate_all(lexicon, MTNoise(drop_rate=0.5), rows)
    repeated = _translate_all(lexicon, MTNoise(repeat_rate=0.5), rows)
    length = lambda out: sum(len(p.split()) for p, _ in out)  # noqa: E731
    assert length(dropped) < length(exact) < length(repeated)


def test_world_config_exposes_every_mt_knob():
    config = profile_config("quick")
    noise = config.mt_noise()
    for f in dataclasses.fields(MTNoise):
        assert getattr(noise, f.name) == getattr(config, f"mt_{f.name}")
        assert f"mt_{f.name}" in type(config).__doc__
    with pytest.raises(ValueError, match="mt_hallucination_rate"):
        profile_config("quick", mt_hallucination_rate=1.5)
