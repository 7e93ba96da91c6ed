"""Loaders: the real files in the shared data folder, fixtures in the Belebele / MLiC-Eval / demo-world layouts,
and errors that name the file, row and field."""

import json
import os
import random
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

from lrmerge.data import (  # noqa: E402
    SIB200_LABELS, ChoiceItem, ClassificationItem, HubUnavailableError, MathItem, gsm8k_sft_records, load_belebele,
    load_gsm8k, load_mgsm, load_mlic, load_sib200, load_task, load_task_items, mlic_tc_labels, parse_gsm8k_answer,
    parse_int, split_by_passage, task_labels,
)
from lrmerge.prompts import RESPONSE_SELECTION_QUESTION  # noqa: E402

DATA = Path(os.environ.get("LRMERGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
SIB200_CODES = ("tam_Taml", "tel_Telu", "ory_Orya", "ben_Beng", "bod_Tibt", "uig_Arab", "khk_Cyrl", "eng_Latn")


def need_data(*parts):
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


# ---------------------------------------------------------------- real files

@pytest.mark.parametrize("code", SIB200_CODES)
def test_sib200_real_languages_load_with_paper_sizes(code):
    root = need_data("sib200")
    sizes = {}
    for split in ("train", "dev", "test"):
        items, labels = load_sib200(root, code, split)
        assert labels == SIB200_LABELS  # labels.txt order is the benchmark order
        assert all(isinstance(i, ClassificationItem) and i.label in labels and i.text for i in items)
        assert len({i.id for i in items}) == len(items)
        sizes[split] = len(items)
    assert sizes == {"train": 701, "dev": 99, "test": 204}
    # reference: the release's own reading (pandas read_csv, CSV quoting), which undoes "" escapes
    import pandas as pd
    raw = pd.read_csv(root / code / "test.tsv", sep="\t", dtype=str)
    items, _ = load_sib200(root, code, "test")
    assert [(i.text, i.label) for i in items] == [(t.strip(), c) for t, c in zip(raw["text"], raw["category"])]


def test_sib200_dispatcher_maps_project_code_and_eval_root():
    root = need_data("sib200")
    direct, labels = load_sib200(root, "tam_Taml", "dev")
    task = load_task("sib200", "tam", "dev", DATA)  # eval root holding sib200/
    assert task.items == direct and task.labels == labels and task.lang == "tam_Taml"
    assert task_labels("sib200", "bod", DATA) == SIB200_LABELS
    assert task_labels("mgsm", "ben", DATA) is None


@pytest.mark.parametrize("lang", ["bn", "te", "en"])
def test_mgsm_real_files_have_250_integer_answers(lang):
    path = need_data("mgsm", f"mgsm_{lang}.tsv")
    items = load_mgsm(path, lang, "all")
    assert len(items) == 250 and all(isinstance(i, MathItem) and isinstance(i.answer, int) for i in items)
    raw = [line.rsplit("\t", 1)[1] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert [i.answer for i in items] == [int(a.replace(",", "")) for a in raw]
    dev, test = load_mgsm(path, lang, "dev"), load_mgsm(path, lang, "test")
    assert (len(dev), len(test)) == (50, 200) and dev + test == items  # Table 6: first 50 dev, 200 test


def test_mgsm_translations_share_answers_and_dispatcher_maps_codes():
    need_data("mgsm", "mgsm_en.tsv")
    english = [i.answer for i in load_mgsm(DATA / "mgsm", "en", "all")]
    for project, code in (("ben", "bn"), ("tel", "te")):
        items = load_task_items("mgsm", project, "test", DATA)
        assert [i.answer for i in items] == english[50:]
        assert items[0].id.startswith(f"mgsm/{code}/")


def test_gsm8k_real_splits_parse():
    root = need_data("gsm8k")
    train, test = load_gsm8k(root, "train"), load_gsm8k(root / "test.jsonl", "test")
    assert (len(train), len(test)) == (7473, 1319)
    rows = [json.loads(line) for line in (root / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [i.answer for i in train] == [int(r["answer"].split("####")[-1].strip().replace(",", "")) for r in rows]
    assert all("<<" not in i.rationale and "####" not in i.rationale and i.rationale for i in train + test)
    records = gsm8k_sft_records(train[:3])
    assert [set(r) for r in records] == [{"prompt", "response", "task", "lang"}] * 3
    assert records[0]["task"] == "gsm8k" and records[0]["lang"] == "eng"
    assert records[0]["response"].endswith(f"The answer is {train[0].answer}.")
    assert train[0].question in records[0]["prompt"]


# ---------------------------------------------------------------- parsing

def test_parse_int_commas_signs_and_native_digits():
    assert parse_int("1,250", "x", "answer") == 1250
    assert parse_int("\u09e7\u09e8,\u09e9\u09ea\u09eb", "x", "answer") == 12345  # Bengali digits
    assert parse_int("\u0c67\u0c66\u0c66", "x", "answer") == 100  # Telugu digits
    assert parse_int("-3", "x", "answer") == -3 and parse_int("12.0", "x", "answer") == 12 and parse_int(7, "x", "a") == 7
    for bad in ("1.5", "abc", "", "1-2", True, 2.5):
        with pytest.raises(ValueError, match="answer"):
            parse_int(bad, "file.tsv row 3", "answer")


def test_gsm8k_answer_strips_calculator_annotations():
    rationale, answer = parse_gsm8k_answer("She has 3 * 4 = <<3*4=12>>12 apples.\nThen 1,000 more.\n#### 1,012")
    assert (rationale, answer) == ("She has 3 * 4 = 12 apples.\nThen 1,000 more.", 1012)
    with pytest.raises(ValueError, match="####"):
        parse_gsm8k_answer("no final line", "train.jsonl row 9")


# ---------------------------------------------------------------- Belebele fixtures

def belebele_rows(n_double=6, n_single=3, seed=0):
    rows, rng = [], random.Random(seed)
    for p in range(n_double + n_single):
        for q in range(1, 3 if p < n_double else 2):
            rows.append({"link": f"https://example.org/p{p}", "question_number": q, "flores_passage": f"Passage {p}.",
                         "question": f"Question {p}.{q}?", **{f"mc_answer{k}": f"option {k}" for k in range(1, 5)},
                         "correct_answer_num": str(rng.randint(1, 4)), "dialect": "tam_Taml", "ds": "2023-05-03"})
    return rows


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_belebele_full_size_split_is_180_720_by_passage():
    # 900 questions over 488 passages, as in each Belebele language: 412 passages with 2 questions, 76 with 1
    rows = belebele_rows(n_double=412, n_single=76)
    assert (len(rows), len({r["link"] for r in rows})) == (900, 488)
    split = split_by_passage(rows)
    assert (len(split["dev"]), len(split["test"])) == (180, 720)
    dev_links, test_links = {r["link"] for r in split["dev"]}, {r["link"] for r in split["test"]}
    assert not dev_links & test_links
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)  # the rule does not depend on file order
    assert {r["link"] for r in split_by_passage(shuffled)["dev"]} == dev_links


def test_belebele_file_and_presplit_folder(tmp_path):
    rows = belebele_rows()
    path = write_jsonl(tmp_path / "tam_Taml.jsonl", rows)
    items = load_belebele(path, "tam_Taml", "all")
    assert all(isinstance(i, ChoiceItem) for i in items)
    assert [i.answer for i in items] == [int(r["correct_answer_num"]) - 1 for r in rows]
    dev, test = load_belebele(path, "tam_Taml", "dev"), load_belebele(tmp_path, "tam_Taml", "test")
    assert len(dev) == round(0.2 * len(rows)) and sorted(i.id for i in dev + test) == sorted(i.id for i in items)
    # parquet and a .json list give the same items
    import pandas as pd
    pd.DataFrame(rows).to_parquet(tmp_path / "b.parquet")
    (tmp_path / "b.json").write_text(json.dumps(rows), encoding="utf-8")
    assert load_belebele(tmp_path / "b.parquet", "tam_Taml", "all") == items == load_belebele(tmp_path / "b.json", "tam_Taml", "all")
    # a pre-split folder is read as is
    write_jsonl(tmp_path / "pre" / "tbx_Tibt" / "dev.jsonl", rows[:2])
    write_jsonl(tmp_path / "pre" / "tbx_Tibt" / "test.jsonl", rows[2:])
    assert len(load_belebele(tmp_path / "pre", "tbx_Tibt", "dev")) == 2


@pytest.mark.parametrize("field, value, message", [
    ("correct_answer_num", "5", "correct_answer_num must be 1..4"),
    ("correct_answer_num", "two", "correct_answer_num is not an integer"),
    ("question", "  ", "question is empty"),
    ("mc_answer3", None, "missing field.*mc_answer3"),
])
def test_belebele_bad_rows_name_file_row_and_field(tmp_path, field, value, message):
    rows = belebele_rows()
    rows[4][field] = value
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ValueError, match=rf"bad\.jsonl row 5: .*{message}"):
        load_belebele(path, "tam_Taml", "test")


# ---------------------------------------------------------------- MLiC-Eval fixtures

MLIC_ROWS = {
    "tc": [{"id": 1, "text": "t one", "label": {"en": "sports", "zh": "体育"}},
           {"id": 2, "text": "t two", "label": {"en": "economy", "zh": "经济"}}],
    "mrc": [{"id": 1, "context": ["line a", "line b"], "question": "q?", "options": ["w", "x", "y", "z"], "answer": "C"}],
    "rs": [{"id": 1, "context": ["hi", "hello", "how are you"], "options": ["fine", "blue", "seven"], "answer": "A"}],
    "math": [{"id": 1, "question": "2+3?", "cot": {"en": "2 plus 3 is 5.", "zh": "2加3等于5。"}, "answer": "5"}],
}


def write_mlic(root, lang, rows=MLIC_ROWS, splits=("dev", "test")):
    for task, task_rows in rows.items():
        for split in splits:
            path = root / task / lang / f"{split}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(task_rows, ensure_ascii=False), encoding="utf-8")


def test_mlic_tasks_map_to_schema_items(tmp_path):
    write_mlic(tmp_path / "data", "mn")
    tc = load_mlic(tmp_path, "tc", "mn", "test")
    assert [(i.text, i.label) for i in tc] == [("t one", "sports"), ("t two", "economy")]
    mrc = load_mlic(tmp_path, "mrc", "mn", "dev")[0]
    assert (mrc.passage, mrc.question, mrc.options, mrc.answer) == ("line a\nline b", "q?", ("w", "x", "y", "z"), 2)
    rs = load_mlic(tmp_path, "rs", "mn", "dev")[0]
    assert (rs.passage, rs.question, rs.answer) == ("hi\nhello\nhow are you", RESPONSE_SELECTION_QUESTION, 0)
    math = load_mlic(tmp_path, "math", "mn", "dev")[0]
    assert (math.answer, math.rationale) == (5, "2 plus 3 is 5.")
    assert mlic_tc_labels(tmp_path, "mn") == ("economy", "sports")
    task = load_task("mlic_tc", "mvf", "dev", tmp_path)  # mvf -> MLiC code mn
    assert task.lang == "mn" and task.labels == ("economy", "sports")


@pytest.mark.parametrize("task, change, message", [
    ("mrc", {"answer": "E"}, "answer 'E' is not one of the option letters ABCD"),
    ("rs", {"options": "fine"}, "options must be a list"),
    ("math", {"answer": "2.5"}, "answer is not an integer"),
    ("tc", {"label": "sports"}, "label must be an object"),
    ("tc", {"text": ""}, "text is empty"),
])
def test_mlic_bad_rows_name_file_row_and_field(tmp_path, task, change, message):
    rows = {task: [MLIC_ROWS[task][0], {**MLIC_ROWS[task][0], **change}]}
    write_mlic(tmp_path, "bo", rows)
    with pytest.raises(ValueError, match=rf"{task}/bo/test\.json row 2: .*{message}"):
        load_mlic(tmp_path, task, "bo", "test")


# ---------------------------------------------------------------- demo-world layout

def test_demo_world_eval_layout_loads_with_the_same_functions(tmp_path):
    eval_root = tmp_path / "world" / "eval"
    for code in ("tbx_Tibt", "eng_Latn"):
        folder = eval_root / "sib200" / code
        folder.mkdir(parents=True)
        (folder / "labels.txt").write_text("sports\nhealth\n", encoding="utf-8")
        for split, n in (("dev", 2), ("test", 3)):
            lines = ["index_id\tcategory\ttext"] + [f"{k}\t{('sports', 'health')[k % 2]}\ttext {k}" for k in range(n)]
            (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        write_jsonl(eval_root / "belebele" / code / "dev.jsonl", belebele_rows()[:3])
        write_jsonl(eval_root / "belebele" / code / "test.jsonl", belebele_rows()[3:])
    for lang in ("tbx", "eng"):
        (eval_root / "mgsm" / lang).mkdir(parents=True)
        (eval_root / "mgsm" / lang / "dev.tsv").write_text("one plus one?\t2\n", encoding="utf-8")
        (eval_root / "mgsm" / lang / "test.tsv").write_text("two plus two?\t4\nthree?\t3\n", encoding="utf-8")
        write_mlic(eval_root / "mlic", lang, {"rs": MLIC_ROWS["rs"]})
    for lang in ("tbx", "eng"):
        sib = load_task("sib200", lang, "test", eval_root)
        assert len(sib.items) == 3 and sib.labels == ("sports", "health")
        assert len(load_task_items("belebele", lang, "test", eval_root)) == len(belebele_rows()) - 3
        assert [i.answer for i in load_task_items("mgsm", lang, "test", eval_root)] == [4, 3]  # eng: folder "eng", not "en"
        assert load_task_items("mlic_rs", lang, "dev", eval_root)[0].answer == 0
    with pytest.raises(FileNotFoundError, match="mnx"):
        load_task_items("mgsm", "mnx", "dev", eval_root)


# ---------------------------------------------------------------- bad input and the hub

def test_sib200_bad_inputs_name_file_and_field(tmp_path):
    folder = tmp_path / "xxx_Latn"
    folder.mkdir()
    (folder / "labels.txt").write_text("sports\nhealth\n", encoding="utf-8")
    (folder / "dev.tsv").write_text("index_id\ttext\n1\thello\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dev\.tsv header.*category"):
        load_sib200(tmp_path, "xxx_Latn", "dev")
    (folder / "dev.tsv").write_text("index_id\tcategory\ttext\n1\tsports\thi\n2\tcooking\tyo\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dev\.tsv row 2: field category 'cooking'"):
        load_sib200(tmp_path, "xxx_Latn", "dev")
    (folder / "dev.tsv").write_text("index_id\tcategory\ttext\n1\tsports\t \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dev\.tsv row 1: field text is empty"):
        load_sib200(tmp_path, "xxx_Latn", "dev")
    with pytest.raises(FileNotFoundError, match="found: xxx_Latn"):
        load_sib200(tmp_path, "yyy_Latn", "dev")


def test_mgsm_bad_inputs_name_file_and_row(tmp_path):
    path = tmp_path / "mgsm_xx.tsv"
    path.write_text("q one\t3\nq two\tmany\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"mgsm_xx\.tsv row 2: field answer is not an integer: 'many'"):
        load_mgsm(path, "xx", "all")
    path.write_text("q one\t3\nq two without answer\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"mgsm_xx\.tsv row 2: .*no tab"):
        load_mgsm(path, "xx", "all")


def test_gsm8k_bad_inputs_name_file_and_row(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"question": "q", "answer": "x\n#### 4"}, {"question": "q2"}])
    with pytest.raises(ValueError, match=r"train\.jsonl row 2: missing field\(s\) answer"):
        load_gsm8k(path, "train")
    path.write_text('{"question": "q", "answer": "#### 4"}\n{broken\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.jsonl line 2: not valid JSON"):
        load_gsm8k(tmp_path, "train")


def test_unknown_choices_list_allowed_values(tmp_path):
    with pytest.raises(ValueError, match="allowed: sib200, belebele, mgsm"):
        load_task_items("xnli", "tam", "dev", tmp_path)
    with pytest.raises(ValueError, match="allowed: dev, test"):
        load_task_items("sib200", "tam", "train", tmp_path)
    with pytest.raises(ValueError, match="allowed: tc, mrc, rs, math"):
        load_mlic(tmp_path, "qa", "bo", "dev")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_gsm8k(tmp_path / "missing" / "gsm8k", "train")


@pytest.mark.parametrize("call, dataset_id", [
    (lambda: load_sib200("Davlan/sib200", "tam_Taml", "dev"), "Davlan/sib200"),
    (lambda: load_belebele("facebook/belebele", "tam_Taml", "dev"), "facebook/belebele"),
    (lambda: load_mgsm("juletxara/mgsm", "bn", "test"), "juletxara/mgsm"),
    (lambda: load_gsm8k("openai/gsm8k", "train"), "openai/gsm8k"),
    (lambda: load_mlic("pkupie/milic-eval", "tc", "bo", "dev"), "pkupie/milic-eval"),
])
def test_hub_sources_fail_clearly_when_offline(monkeypatch, tmp_path, call, dataset_id):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    with pytest.raises(HubUnavailableError, match=rf"needs the hub: {dataset_id}.*HF_HUB_OFFLINE=0 and network access"):
        call()
