"""Per-language configuration (Tables 1-2, section 4) and the paper's reported numbers (Tables 3-13)."""

import os
from pathlib import Path

import pytest

from lrmerge import paper_results as pr
from lrmerge.languages import (
    BENCHMARKS, DEMO_LANGUAGES, LANGUAGES, PAPER_LANGUAGES, benchmark_codes, get_language,
)

DATA = Path(os.environ.get("LRMERGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
B, M = 10**9, 10**6


# ---------------------------------------------------------------- languages

def test_get_language_unknown_lists_known_codes():
    assert get_language("tam").flores_code == "tam_Taml"
    with pytest.raises(ValueError, match="unknown language 'xyz'; known: tam, tel, ory, ben, bod, uig, mvf, eng, tbx, mnx"):
        get_language("xyz")


def test_table2_corpus_sizes_and_ct_tokens():
    table2 = {"tam": ("CulturaX", 15.9 * B, 8 * B), "tel": ("CulturaX", 12.4 * B, 8 * B), "ory": ("CulturaX", 765 * M, 765 * M),
              "ben": ("IndicCorp-v2", 36.4 * B, 16 * B), "bod": ("MC^2", 1.00 * B, 1.00 * B), "uig": ("MC^2", 412 * M, 412 * M),
              "mvf": ("MC^2", 904 * M, 904 * M)}
    assert set(table2) == set(PAPER_LANGUAGES)
    for code, (name, size, used) in table2.items():
        corpus = get_language(code).ct_corpus
        assert corpus.name == name and corpus.size_tokens == pytest.approx(size) and corpus.tokens_used == pytest.approx(used)
        assert corpus.tokens_used <= corpus.size_tokens and corpus.hub_id and corpus.subset and corpus.text_field
    hubs = {get_language(c).ct_corpus.hub_id for c in PAPER_LANGUAGES}
    assert hubs == {"uonlp/CulturaX", "ai4bharat/IndicCorpV2", "pkupie/mc2_corpus"}


def test_script_coverage_codes_and_demo_flags():
    assert {c for c, cfg in LANGUAGES.items() if not cfg.in_llama2_vocab} == {"ory", "mvf", "mnx"}
    assert tuple(c for c, cfg in LANGUAGES.items() if cfg.is_demo) == DEMO_LANGUAGES == ("tbx", "mnx")
    assert [get_language(c).mlic_code for c in ("bod", "uig", "mvf")] == ["bo", "ug", "mn"]
    mvf = get_language("mvf")
    assert mvf.nllb_code == "khk_Cyrl" and mvf.nllb_transliterate and mvf.flores_code is None
    for code in PAPER_LANGUAGES:
        cfg = get_language(code)
        assert cfg.family and cfg.script and cfg.population and not cfg.is_demo
        if cfg.flores_code:
            assert cfg.nllb_code == cfg.flores_code  # NLLB uses FLORES-200 codes


def test_tasks_match_table2_and_the_paper_tables():
    for code in PAPER_LANGUAGES:
        cfg = get_language(code)
        _, printed_tasks, _ = pr.PER_TASK[code]
        assert set(cfg.tasks) == set(printed_tasks)  # two transcriptions agree: Table 2 and Tables 7-13
        assert all(cfg.task_source(t).count("/") == 1 for t in cfg.tasks)  # hub ids for the real languages
    for code in DEMO_LANGUAGES:
        cfg = get_language(code)
        assert cfg.tasks == ("sib200", "belebele", "mgsm", "mlic_rs")
        assert cfg.task_source("mgsm", world="/w") == "/w/eval"
        with pytest.raises(ValueError, match="needs world="):
            cfg.task_source("mgsm")
    with pytest.raises(ValueError, match="tam is not evaluated on 'mgsm'"):
        get_language("tam").task_source("mgsm")


def test_eval_module_task_sets_agree():
    tasks = pytest.importorskip("lrmerge.eval.tasks")
    for code in PAPER_LANGUAGES:
        assert tuple(tasks.PAPER_TASKS[code]) == get_language(code).tasks


def test_demo_codes_agree_with_the_demo_world():
    demo = pytest.importorskip("lrmerge.demo.config")
    for code, flores in demo.FLORES_CODE.items():
        assert get_language(code).flores_code == flores


def test_benchmark_codes():
    assert benchmark_codes("sib200", "tam") == ("tam_Taml", "tam")
    assert benchmark_codes("mgsm", "ben") == ("bn", "ben")
    assert benchmark_codes("mlic_rs", "mvf") == ("mn", "mvf")
    assert benchmark_codes("mgsm", "tbx") == ("tbx",)
    assert benchmark_codes("belebele", "tam_Taml") == ("tam_Taml",)  # a benchmark's own code passes through
    with pytest.raises(ValueError, match="allowed: sib200, belebele"):
        benchmark_codes("xnli", "tam")


def test_flores_codes_exist_in_the_real_sib200_release():
    if not (DATA / "sib200").is_dir():
        pytest.skip("real SIB-200 data not available")
    for code, cfg in LANGUAGES.items():
        if "sib200" in cfg.tasks and not cfg.is_demo:
            assert (DATA / "sib200" / cfg.flores_code).is_dir(), code


# ---------------------------------------------------------------- paper results

def _mismatches(tolerance=0.05):
    """(language, model, table) where an average disagrees with the mean of its task scores."""
    frame = pr.paper_results()
    found = set()
    for lang in pr.LANGUAGE_ORDER:
        table = pr.PER_TASK[lang][0]
        rows = frame[(frame.language == lang) & (frame.table == table)]
        for model, group in rows.groupby("model"):
            mean = group[group.task != "average"].score.mean()
            printed = group[group.task == "average"].score.item()
            table3 = frame[(frame.table == "table3") & (frame.language == lang) & (frame.model == model)].score.item()
            if abs(table3 - mean) > tolerance or abs(printed - mean) > tolerance:
                found.add((lang, model, table))
    return found


def test_table3_averages_equal_means_of_tables_7_to_13_except_documented():
    documented = {(lang, model, table) for lang, model, table, _ in pr.DISCREPANCIES}
    assert _mismatches() == documented
    assert all(why for *_, why in pr.DISCREPANCIES)


def test_cross_language_average_and_headlines():
    frame = pr.paper_results()
    t3 = frame[frame.table == "table3"]
    for model, group in t3.groupby("model"):
        per_lang = group[group.language != pr.ALL_LANGUAGES].score
        assert len(per_lang) == 7
        assert group[group.language == pr.ALL_LANGUAGES].score.item() == pytest.approx(per_lang.mean(), abs=0.01)
    score = lambda model, lang="all": pr.paper_score(lang, model)  # noqa: E731
    assert score("TIES-X-flan") == pr.HEADLINES["ties_average"]
    assert score("TIES-X-flan") - score("CTSFT-X-flan") == pytest.approx(pr.HEADLINES["ties_minus_ctsft_flan"], abs=0.005)
    gaps = [score("CTSFT-X-mt", lang) - score("CTSFT-X-flan", lang) for lang in pr.LANGUAGE_ORDER]
    assert (max(gaps), min(gaps)) == pytest.approx(pr.HEADLINES["mt_gap_range"], abs=0.005)


def test_table4_ties_sv_and_table5_agree_with_the_other_tables():
    frame = pr.paper_results()
    t4 = frame[frame.table == "table4"]
    for model, group in t4.groupby("model"):
        tasks = group[group.task != "average"].score
        assert group[group.task == "average"].score.item() == pytest.approx(tasks.mean(), abs=0.005)
    gain = pr.paper_score("ben", "TIES-SV-X-flan", table="table4") - pr.paper_score("ben", "TIES-X-flan", table="table4")
    assert gain == pytest.approx(pr.HEADLINES["ties_sv_gain"], abs=0.005)
    for task in ("mgsm", "sib200", "belebele"):  # Table 4's TIES is Table 10's TIES-ben-flan
        assert pr.paper_score("ben", "TIES-X-flan", task, "table4") == pr.paper_score("ben", "TIES-X-flan", task)
    t5 = frame[frame.table == "table5"]
    for row in t5.itertuples():
        if row.model == "SFT-flan" or row.x == row.language:  # single-language entries also printed in Table 3
            assert row.score == pr.paper_score(row.language, row.model), row
    assert set(t5.x) == {"", "mvf", "uig", "mvf&uig"}


def test_tidy_frame_shape_and_vocabulary():
    frame = pr.paper_results()
    assert tuple(frame.columns) == pr.COLUMNS
    assert set(frame.model) <= set(pr.MODELS) and set(frame.task) <= set(pr.TASKS)
    assert not frame.duplicated(["language", "model", "x", "task", "table"]).any()
    assert frame.score.between(0, 100).all()
    assert len(frame[frame.table == "table3"]) == 7 * 8
    n_tasks = {lang: len(tasks) + 1 for lang, (_, tasks, _) in pr.PER_TASK.items()}
    for lang, (table, _, _) in pr.PER_TASK.items():
        assert len(frame[frame.table == table]) == 7 * n_tasks[lang]
    x_free = frame[frame.model.isin(["BASE", "SFT-flan"])]
    assert (x_free.x == "").all()


def test_table6_sizes_and_the_loaders_split_rules():
    from lrmerge.data.belebele import BELEBELE_DEV_FRACTION
    from lrmerge.data.mgsm import MGSM_DEV_FRACTION

    sizes = pr.eval_set_sizes().set_index("task")
    assert set(sizes.index) == set(BENCHMARKS)
    belebele = sizes.loc["belebele"]
    assert (belebele.dev / 4, belebele.test / 4) == (180, 720)  # 4 Indian languages x 900 questions
    assert belebele.dev / (belebele.dev + belebele.test) == BELEBELE_DEV_FRACTION
    mgsm = sizes.loc["mgsm"]
    assert mgsm.dev + mgsm.test == 250 and mgsm.dev / 250 == MGSM_DEV_FRACTION
    assert pr.TIES_SV_RESERVE_FRACTION * 100 == pr.FIGURE4_EXTRA_DISCARDED_POINTS
    assert pr.FIGURE4_DENSITIES["k_sft"] in pr.DENSITY_GRID and pr.FIGURE4_DENSITIES["k_ct"] in pr.DENSITY_GRID
