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


def per_task_table(scores: pd.DataFrame, language: str, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Tables 7-13: one row per model, one column per task of ``language``, and their Average."""
    rows = check_scores(scores)
    rows = rows[(rows["language"] == language) & (rows["task"] != "average")]
    if rows.empty:
        raise ValueError(f"no scores for language {language!r}")
    table = rows.pivot_table(index="model", columns="task", values="score", aggfunc="mean")
    table = table[_ordered_tasks(table.columns)]
    table["average"] = table.mean(axis=1, skipna=False)
    table = table.loc[_ordered_models(table.index) if models is None else list(models)]
    table.columns = [TASK_TITLES.get(c, c) for c in table.columns]
    table.index.name = None
    return table


def roadmap_table(scores: pd.DataFrame, languages: Sequence[str] | None = None,
                  models: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 3: one row per model, one column per language (average over its tasks), and the Average across them."""
    rows = check_scores(scores)
    languages = list(languages or sorted(rows["language"].unique()))
    columns = {lang: per_task_table(rows, lang)["Average"] for lang in languages}
    table = pd.DataFrame(columns)
    table["Average"] = table.mean(axis=1, skipna=False)
    table = table.loc[_ordered_models(table.index) if models is None else list(models)]
    return table


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


def _rendered_rows(table: pd.DataFrame, marks: pd.DataFrame, digits: int, missing: str, style: dict[str, str]):
    """(row label, cell texts) per row: numbers with ``digits`` decimals wrapped in ``style[mark]``."""
    for label in table.index:
        values = (table.loc[label, column] for column in table.columns)
        texts = [missing if pd.isna(v) else f"{v:.{digits}f}" for v in values]
        yield label, [style[marks.loc[label, c]].format(t) for c, t in zip(table.columns, texts)]


def to_markdown(table: pd.DataFrame, highlight: Highlight = "column", digits: int = 2) -> str:
    """GitHub Markdown: best per column in **bold**, second <u>underlined</u>."""
    marks = _marks(table, highlight)
    lines = ["| | " + " | ".join(_header(c) for c in table.columns) + " |",
             "|---|" + "---:|" * len(table.columns)]
    style = {"best": "**{}**", "second": "<u>{}</u>", "": "{}"}
    for label, cells in _rendered_rows(table, marks, digits, "–", style):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return text.replace("&", r"\&").replace("_", r"\_").replace("%", r"\%")


def to_latex(table: pd.DataFrame, highlight: Highlight = "column", digits: int = 2, caption: str = "",
             label: str = "") -> str:
    """A booktabs LaTeX table: best per column in \\textbf, second \\underline."""
    marks = _marks(table, highlight)
    spec = "l" + "r" * len(table.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & " + " & ".join(_latex_escape(_header(c)) for c in table.columns) + r" \\", r"\midrule"]
    style = {"best": r"\textbf{{{}}}", "second": r"\underline{{{}}}", "": "{}"}
    for row_label, cells in _rendered_rows(table, marks, digits, "--", style):
        lines.append(_latex_escape(str(row_label)) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{_latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, name: str, folder: str | Path, highlight: Highlight = "column",
                caption: str = "") -> list[Path]:
    """Write ``name.md``, ``name.tex`` and ``name.csv`` into ``folder`` (each atomically)."""
    folder = Path(folder)
    return [atomic_write_text(folder / f"{name}.md", to_markdown(table, highlight)),
            atomic_write_text(folder / f"{name}.tex", to_latex(table, highlight, caption=caption, label=f"tab:{name}")),
            atomic_write_text(folder / f"{name}.csv", table.to_csv())]
