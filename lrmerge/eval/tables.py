"""The paper's tables from this run's scores: Table 3, Tables 7-13, Table 4 and Table 5.

Input is a tidy scores frame with columns ``language, model, task, score`` (score in percent, as the paper prints),
models named as in ``lrmerge.paper_results.MODELS`` ("CT-X" with X the row's language). Tables are DataFrames;
``to_markdown`` / ``to_latex`` render them with the best value per column in bold and the second underlined, and
``with_paper`` puts the paper's numbers beside this run's where the language is one of the paper's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Sequence

import pandas as pd

from lrmerge.paper_results import ROADMAP_MODELS, paper_results
from lrmerge.runs import atomic_write_text

SCORE_COLUMNS = ("language", "model", "task", "score")
TASK_ORDER = ("mgsm", "sib200", "belebele", "mlic_tc", "mlic_mrc", "mlic_rs", "mlic_math")  # the appendix's order
TASK_TITLES = {"sib200": "SIB-200", "belebele": "Belebele", "mgsm": "MGSM", "mlic_tc": "TC", "mlic_mrc": "MRC",
               "mlic_rs": "RS", "mlic_math": "Math", "average": "Average"}
Highlight = Literal["column", "row", "none"]


def check_scores(scores: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"scores frame lacks column(s) {missing}; needs {list(SCORE_COLUMNS)}")
    bad = scores[(scores["score"] < 0) | (scores["score"] > 100)]
    if len(bad):
        raise ValueError(f"scores must be percentages in [0, 100]; e.g. {bad.iloc[0].to_dict()}")
    return scores


def _ordered_tasks(tasks) -> list[str]:
    known = [t for t in TASK_ORDER if t in set(tasks)]
    return known + sorted(set(tasks) - set(known))


def _ordered_models(models, order: Sequence[str] = ROADMAP_MODELS) -> list[str]:
    present = set(models)
    return [m for m in order if m in present] + sorted(present - set(order))


MATH_TASKS = ("mgsm", "mlic_math")  # scored by generation; every other task by the options' log-likelihood


def study_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """The rows Tables 3-5 average: multiple-choice tasks by log-likelihood (``loglik``), math by generation.
    A frame without a ``protocol`` column passes through."""
    if "protocol" not in scores.columns:
        return scores
    wanted = scores["task"].map(lambda t: "generate" if t in MATH_TASKS else "loglik")
    return scores[scores["protocol"] == wanted].drop(columns="protocol")


def _by_seed(rows: pd.DataFrame) -> pd.DataFrame:
    """Task columns per (model, seed), with the average over tasks; one seed when the frame has none."""
    rows = rows.assign(seed=rows["seed"].fillna(-1) if "seed" in rows.columns else -1)
    table = rows.pivot_table(index=["model", "seed"], columns="task", values="score", aggfunc="mean")
    table = table[_ordered_tasks(table.columns)]
    table["average"] = table.mean(axis=1, skipna=False)
    return table


def _seed_stats(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(mean, standard error) over seeds; the standard error is NaN with one seed."""
    grouped = table.groupby(level="model")
    mean = grouped.mean()
    stderr = grouped.std(ddof=1) / grouped.count().pow(0.5)
    return mean, stderr


def _finish(table: pd.DataFrame, models: Sequence[str] | None) -> pd.DataFrame:
    table = table.loc[_ordered_models(table.index) if models is None else [m for m in models if m in table.index]]
    table.columns = [TASK_TITLES.get(c, c) for c in table.columns]
    table.index.name = None
    table.columns.name = None
    return table


def per_task_stats(scores: pd.DataFrame, language: str, models: Sequence[str] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 7-13 as (mean over seeds, standard error over seeds): a row per model, a column per task, Average."""
    rows = check_scores(scores)
    rows = rows[(rows["language"] == language) & (rows["task"] != "average")]
    if rows.empty:
        raise ValueError(f"no scores for language {language!r}")
    mean, stderr = _seed_stats(_by_seed(rows))
    return _finish(mean, models), _finish(stderr.reindex(mean.index), models)


def per_task_table(scores: pd.DataFrame, language: str, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Tables 7-13: one row per model, one column per task of ``language``, and their Average (mean over seeds)."""
    return per_task_stats(scores, language, models)[0]


def roadmap_stats(scores: pd.DataFrame, languages: Sequence[str] | None = None,
                  models: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 3 as (mean, standard error over seeds): a row per model, a column per language (average over its
    tasks), and the Average across languages (per seed, then over seeds)."""
    rows = check_scores(scores)
    languages = list(languages or sorted(rows["language"].unique()))
    per_seed = pd.DataFrame({lang: _by_seed(rows[(rows["language"] == lang) & (rows["task"] != "average")])["average"]
                             for lang in languages})
    per_seed["Average"] = per_seed.mean(axis=1, skipna=False)
    mean, stderr = _seed_stats(per_seed)
    order = _ordered_models(mean.index) if models is None else [m for m in models if m in mean.index]
    return mean.loc[order].rename_axis(None), stderr.reindex(mean.index).loc[order].rename_axis(None)


def roadmap_table(scores: pd.DataFrame, languages: Sequence[str] | None = None,
                  models: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 3: one row per model, one column per language (average over its tasks), and the Average across them."""
    return roadmap_stats(scores, languages, models)[0]


def ties_sv_table(scores: pd.DataFrame, language: str) -> pd.DataFrame:
    """Table 4: TIES vs TIES-SV on one language's tasks."""
    table = per_task_table(scores, language, models=["TIES-X-flan", "TIES-SV-X-flan"])
    table.index = ["TIES", "TIES-SV"]
    return table


def multilingual_table(scores: pd.DataFrame, languages: Sequence[str]) -> pd.DataFrame:
    """Table 5: rows are models (e.g. SFT-flan, CT-<a>, CT-<b>, TIES-<a>-flan, TIES-<a>&<b>-flan), columns the
    average over each language's tasks. ``scores`` rows name concrete models (no X placeholder)."""
    rows = check_scores(scores)
    rows = rows[(rows["task"] != "average") & rows["language"].isin(languages)]
    table = rows.groupby(["model", "language"])["score"].mean().unstack("language")[list(languages)]
    order = ["SFT-flan"] + [f"CT-{l}" for l in languages] + [f"TIES-{l}-flan" for l in languages] + ["TIES-" + "&".join(languages) + "-flan"]
    table = table.loc[[m for m in order if m in table.index] + sorted(set(table.index) - set(order))]
    table.index.name = None
    table.columns.name = None
    return table


def with_paper(table: pd.DataFrame, kind: Literal["roadmap", "per_task"], language: str | None = None) -> pd.DataFrame:
    """This run's table with the paper's numbers beside it (columns ``(column, 'this run' | 'paper')``).

    Only the paper's languages have paper numbers; demo languages get NaN in the paper columns.
    """
    paper = paper_results()
    out = {}
    for column in table.columns:
        out[(column, "this run")] = table[column]
        values = []
        for model in table.index:
            if kind == "roadmap":
                lang, task = (column, "average")
                hit = paper[(paper["table"] == "table3") & (paper["model"] == model) & (paper["language"] == lang)]
            else:
                task = next((k for k, v in TASK_TITLES.items() if v == column), column)
                hit = paper[(paper["language"] == language) & (paper["model"] == model) & (paper["task"] == task)
                            & (paper["table"] != "table3")]
            values.append(float(hit["score"].iloc[0]) if len(hit) else math.nan)
        out[(column, "paper")] = pd.Series(values, index=table.index)
    return pd.DataFrame(out)


def _ranks(values: pd.Series) -> dict:
    """Index labels of the best and second-best distinct values (higher is better)."""
    distinct = sorted({v for v in values if not pd.isna(v)}, reverse=True)
    best = distinct[0] if distinct else None
    second = distinct[1] if len(distinct) > 1 else None
    return {label: ("best" if v == best else "second" if v == second else "") for label, v in values.items()}


def _marks(table: pd.DataFrame, highlight: Highlight) -> pd.DataFrame:
    marks = pd.DataFrame("", index=table.index, columns=table.columns)
    if highlight == "column":
        for column in table.columns:
            for label, mark in _ranks(table[column]).items():
                marks.loc[label, column] = mark
    elif highlight == "row":
        for label in table.index:
            for column, mark in _ranks(table.loc[label]).items():
                marks.loc[label, column] = mark
    elif highlight != "none":
        raise ValueError(f"unknown highlight {highlight!r}; allowed: column, row, none")
    return marks


def _header(column) -> str:
    return " ".join(str(c) for c in column) if isinstance(column, tuple) else str(column)


def _rendered_rows(table: pd.DataFrame, marks: pd.DataFrame, digits: int, missing: str, style: dict[str, str],
                   stderr: pd.DataFrame | None = None, pm: str = " ± "):
    """(row label, cell texts) per row: numbers with ``digits`` decimals wrapped in ``style[mark]``, followed by
    ``pm`` and the standard error where ``stderr`` has one."""
    for label in table.index:
        texts = []
        for column in table.columns:
            value = table.loc[label, column]
            text = missing if pd.isna(value) else style[marks.loc[label, column]].format(f"{value:.{digits}f}")
            error = stderr.loc[label, column] if stderr is not None and label in stderr.index else float("nan")
            texts.append(text if pd.isna(value) or pd.isna(error) else f"{text}{pm}{error:.{digits}f}")
        yield label, texts


def to_markdown(table: pd.DataFrame, highlight: Highlight = "column", digits: int = 2,
                stderr: pd.DataFrame | None = None) -> str:
    """GitHub Markdown: best per column in **bold**, second <u>underlined</u>; ``stderr``: "mean ± SE" cells."""
    marks = _marks(table, highlight)
    lines = ["| | " + " | ".join(_header(c) for c in table.columns) + " |",
             "|---|" + "---:|" * len(table.columns)]
    style = {"best": "**{}**", "second": "<u>{}</u>", "": "{}"}
    for label, cells in _rendered_rows(table, marks, digits, "–", style, stderr):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return text.replace("&", r"\&").replace("_", r"\_").replace("%", r"\%")


def to_latex(table: pd.DataFrame, highlight: Highlight = "column", digits: int = 2, caption: str = "",
             label: str = "", stderr: pd.DataFrame | None = None) -> str:
    """A booktabs LaTeX table: best per column in \\textbf, second \\underline."""
    marks = _marks(table, highlight)
    spec = "l" + "r" * len(table.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & " + " & ".join(_latex_escape(_header(c)) for c in table.columns) + r" \\", r"\midrule"]
    style = {"best": r"\textbf{{{}}}", "second": r"\underline{{{}}}", "": "{}"}
    for row_label, cells in _rendered_rows(table, marks, digits, "--", style, stderr, r" $\pm$ "):
        lines.append(_latex_escape(str(row_label)) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{_latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, name: str, folder: str | Path, highlight: Highlight = "column",
                caption: str = "", stderr: pd.DataFrame | None = None) -> list[Path]:
    """Write ``name.md``, ``name.tex`` and ``name.csv`` (mean, and ``<column> SE`` columns) into ``folder``."""
    folder = Path(folder)
    csv = table if stderr is None else table.join(stderr.add_suffix(" SE"))
    return [atomic_write_text(folder / f"{name}.md", to_markdown(table, highlight, stderr=stderr)),
            atomic_write_text(folder / f"{name}.tex", to_latex(table, highlight, caption=caption, label=f"tab:{name}",
                                                               stderr=stderr)),
            atomic_write_text(folder / f"{name}.csv", csv.to_csv())]
