import csv
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from lrmerge.eval.parse import first_line, numbers_equal, parse_letter, parse_number
from lrmerge.prompts import letter_answer, math_answer

DATA = Path(os.environ.get("LRMERGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.mark.parametrize("generation, expected", [
    ("A", "A"), (" A", "A"), ("A.", "A"), ("(A)", "A"), ("[C]", "C"), ("Answer: A", "A"), ("answer:D", "D"),
    (" B) text", "B"), ("C: the travel topic", "C"), ("The answer is (B)", "B"), ("The correct answer is D.", "D"),
    ("Option B", "B"), ("D\nA", "D"),
])
def test_letter_formats(generation, expected):
    assert parse_letter(generation, "ABCD") == expected


@pytest.mark.parametrize("generation", [
    "", "\nA", "After reading, A", "I think", "E", "Z.", "1", "Answer:", "a.", "AB", "Answer: science",
])
def test_letter_none_when_no_valid_letter(generation):
    assert parse_letter(generation, "ABCD") is None


def test_letter_only_first_line_counts():
    assert parse_letter("no idea\nA", "ABCD") is None
    assert parse_letter("G", "ABCDEFG") == "G" and parse_letter("G", "ABCD") is None


def test_letter_roundtrip_of_sft_targets():
    for index in range(7):
        assert parse_letter(letter_answer(index), "ABCDEFG") == "ABCDEFG"[index]


def test_first_line():
    assert first_line("  B. sports\nC") == "B. sports"


@pytest.mark.parametrize("generation, expected", [
    ("The answer is 18.", "18"), ("$80,000 repairs; profit 70,000 dollars", "70000"), ("It is -5", "-5"),
    ("5-3 = 2", "2"), ("5-3", "3"), ("2.5 apples", "2.5"), ("pi is 3.14.", "3.14"), ("\u22127 degrees", "-7"),
    ("1,2,3", "3"), ("১৮টি ডিম", "18"), ("జవాబు ౨౫.", "25"), ("mixed 12 then ১০০", "100"), ("١٢٣", "123"),
    ("150% of 1,000,000.50", "1000000.50"),
])
def test_last_number(generation, expected):
    assert parse_number(generation) == Decimal(expected)


@pytest.mark.parametrize("generation", ["", "no number here", "The answer is x.", "-", ","])
def test_number_none(generation):
    assert parse_number(generation) is None


def test_numbers_equal_compares_values():
    assert numbers_equal(Decimal("18.0"), 18) and numbers_equal(Decimal("-3"), "-3")
    assert not numbers_equal(Decimal("18.5"), 18) and not numbers_equal(None, 0)


def _to_script(number: int, zero: int) -> str:
    return "".join(chr(zero + int(d)) if d.isdigit() else d for d in str(number))


@pytest.mark.skipif(not (DATA / "mgsm").exists(), reason="shared MGSM data not present")
@pytest.mark.parametrize("lang, zero", [("bn", 0x09E6), ("te", 0x0C66), ("en", ord("0"))])
def test_mgsm_answers_in_native_and_ascii_digits(lang, zero):
    with open(DATA / "mgsm" / f"mgsm_{lang}.tsv", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert len(rows) == 250
    for question, answer in rows:
        gold = int(answer.replace(",", ""))
        # the question's own numbers come first: only the last number (the answer) may count
        assert numbers_equal(parse_number(question + math_answer(gold)), gold)
        assert numbers_equal(parse_number(f"{question} = {_to_script(gold, zero)}"), gold)
        assert numbers_equal(parse_number(f"The answer is {gold:,}."), gold)


@pytest.mark.skipif(not (DATA / "gsm8k").exists(), reason="shared GSM8K data not present")
def test_gsm8k_rationales_last_number_is_the_answer():
    with open(DATA / "gsm8k" / "test.jsonl") as handle:
        rows = [json.loads(line) for line, _ in zip(handle, range(300))]
    for row in rows:
        rationale, gold = row["answer"].split("####")
        gold = int(gold.strip().replace(",", ""))
        rationale = rationale.replace("<<", " ").replace(">>", " ").strip()
        generation = math_answer(gold, rationale.replace("\n", " "))  # the SFT target format
        assert numbers_equal(parse_number(generation), gold), generation
        # and the rationale alone ends with its result in GSM8K (at least for these rows, checked, not assumed)
        assert parse_number(row["answer"]) == Decimal(gold)
