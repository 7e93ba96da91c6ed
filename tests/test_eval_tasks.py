import pytest

from lrmerge import prompts
from lrmerge.data.schema import ChoiceItem, ClassificationItem, MathItem
from lrmerge.eval.tasks import (SIB200_LABELS, TEMPLATES, build_prompt, get_task, labels_from_items,
                                task_for, tasks_for_language)


def test_classification_prompt_uses_fixed_label_order_and_letter_gold():
    item = ClassificationItem("7", "Messi scored twice.", "sports")
    prompt, gold = build_prompt(item, SIB200_LABELS)
    assert prompt == prompts.topic_prompt(item.text, SIB200_LABELS)
    assert gold == "D" and f"{gold}. sports" in prompt
    with pytest.raises(ValueError, match="labels"):
        build_prompt(item)
    with pytest.raises(ValueError, match="'cooking'"):
        build_prompt(ClassificationItem("8", "x", "cooking"), SIB200_LABELS)


def test_choice_and_math_prompts():
    choice = ChoiceItem("q1", "The passage.", "Which?", ("w", "x", "y", "z"), 2)
    assert build_prompt(choice) == (prompts.choice_prompt("The passage.", "Which?", ("w", "x", "y", "z")), "C")
    math = MathItem("m1", "2+2?", 4)
    assert build_prompt(math) == (prompts.math_prompt("2+2?"), "4")


def test_every_benchmark_has_one_template_and_language_variants():
    assert set(TEMPLATES) == {"sib200", "belebele", "mgsm", "mlic_tc", "mlic_mrc", "mlic_rs", "mlic_math"}
    spec = get_task("sib200_tbx_Tibt")
    assert (spec.benchmark, spec.lang, spec.name, spec.labels) == ("sib200", "tbx_Tibt", "sib200_tbx_Tibt", SIB200_LABELS)
    assert get_task("mlic_math_mvf").benchmark == "mlic_math" and get_task("mlic_math_mvf").scorer == "number"
    assert get_task("belebele", lang="tam") == task_for("belebele", "tam")
    assert [s.name for s in tasks_for_language("tel")] == ["sib200_tel", "belebele_tel", "mgsm_tel"]
    assert [s.name for s in tasks_for_language("mvf")] == ["mlic_tc_mvf", "mlic_mrc_mvf", "mlic_rs_mvf", "mlic_math_mvf"]
    assert [s.name for s in tasks_for_language("xyz", ["sib200"])] == ["sib200_xyz"]
    for spec in TEMPLATES.values():
        assert ("\n" in spec.stop) == (spec.scorer == "letter")


@pytest.mark.parametrize("name", ["sib200", "xnli_tam", "sib200_", "nope"])
def test_unknown_tasks_raise(name):
    with pytest.raises(ValueError, match="sib200"):
        get_task(name)


def test_item_type_checked_and_scorer_validated():
    with pytest.raises(ValueError, match="expected MathItem"):
        task_for("mgsm", "ben").build_prompt(ClassificationItem("1", "t", "travel"))
    with pytest.raises(ValueError, match="letter, number"):
        task_for("mgsm", "ben", scorer="exact")
    with pytest.raises(ValueError, match="unknown language"):
        tasks_for_language("xyz")


def test_labels_from_items_sorted_unique():
    items = [ClassificationItem(str(i), "t", label) for i, label in enumerate(["b", "a", "b", "c"])]
    assert labels_from_items(items) == ("a", "b", "c")


def test_runner_loads_real_sib200_through_the_loaders():
    import os
    from pathlib import Path

    from lrmerge.eval.runner import _load_items

    data = Path(os.environ.get("LRMERGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not (data / "sib200" / "tam_Taml").exists():
        pytest.skip("shared SIB-200 data not present")
    spec = get_task("sib200_tam")
    items, labels = _load_items(spec, "dev", data)
    assert len(items) == 99 and labels == SIB200_LABELS
    prompt, gold = spec.build_prompt(items[0], labels)
    assert prompt.startswith("Classify the topic") and f"{gold}. {items[0].label}" in prompt
