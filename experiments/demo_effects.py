"""Does the demo world show the paper's effects? Every model of the study, trained directly through the package for
N seeds, scored the paper's way, and the acceptance comparisons of issue #15 printed with standard errors.

Per seed (CT, SFT and data order; one BASE and one world, as the paper has one Llama-2): SFT-flan; per X language
CT-X with checkpoints at `--budgets` X-token counts (geometric, >= 10x range), and at every checkpoint CTSFT-X-flan
and TIES-X-flan (the paper's k_sft 0.2 / k_ct 1.0 unless `--ties-grid` picks densities on X dev); CTSFT-X-mt and
WAVG-X-flan (weight of SFT-flan picked on X dev from the profile's `wavg_weights`) at the last checkpoint.
Multiple-choice tasks are scored by the log-likelihood of the answers as the world's SFT data writes them (the
letter, or the letter and the option text: `WorldConfig.choice_answer`; `mode="loglik"`), math by parsed
greedy generation (`mode="generate"`); SFT-flan also on the English dev sets.

    python experiments/demo_effects.py [--profile demo] [--seeds 3] [--langs tbx,mnx] [--out runs/experiments/effects]
        [--world key=value ...] [--recipe key=value ...]     (designs: override world knobs and recipe values)

Writes <out>/scores.csv (language, model, seed, ct_tokens, task, protocol, score, n), <out>/timings.csv and
<out>/lrmerge_run.json (world config, recipe, seeds, library versions), each atomically; prints the comparisons.
`--profile quick` runs in well under a minute (tests/test_demo_effects.py).
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIELDS = ("language", "model", "seed", "ct_tokens", "task", "protocol", "score", "n")
MC_TASKS = ("sib200", "belebele", "mlic_rs")
PAPER_TIES = (0.2, 1.0)  # k_sft, k_ct (section 5)


def _assignment(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("demo", "quick"), default="demo")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1")
    parser.add_argument("--langs", default="tbx,mnx")
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--world", type=_assignment, action="append", default=[], help="WorldConfig override")
    parser.add_argument("--recipe", type=_assignment, action="append", default=[], help="recipe override")
    parser.add_argument("--ties-grid", default="", help="densities for a k_sft x k_ct grid on X dev (default: 0.2/1.0)")
    parser.add_argument("--world-root", default=None, help="parent of the worlds (default: runs/world)")
    parser.add_argument("--out", default="runs/experiments/demo_effects")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest on a shared CPU)")
    args = parser.parse_args(argv)
    args.langs = [x for x in args.langs.split(",") if x]
    for lang in args.langs:
        if lang not in ("tbx", "mnx"):
            parser.error(f"--langs: unknown language {lang!r}; allowed: tbx, mnx")
    return args


def recipe_for(profile: str, overrides: dict) -> dict:
    """The study's recipe (lrmerge.profiles) flattened, plus this script's own keys, then the overrides."""
    from lrmerge.profiles import profile_parameters

    recipe = {k: v for stage in ("pretraining", "sft", "merging") for k, v in profile_parameters(profile, stage).items()
              if k.startswith(("ct_", "sft_", "figure2_", "ties_", "wavg_"))}
    recipe.setdefault("ct_lr", 1e-3)
    recipe.setdefault("ct_embedding_lr_multiplier", 1.0)
    recipe.setdefault("sft_lr", 2e-3)
    recipe.setdefault("sft_batch_size", 16)
    recipe.setdefault("sft_max_len", 320)
    recipe.setdefault("sft_replay_share", 0.05)
    recipe.setdefault("ct_replay_share", 0.25)
    recipe.setdefault("ct_budget_range", 10.0)  # scarcest checkpoint = last / this
    recipe.setdefault("effect_points", max(4, int(recipe.get("figure2_points", 4))))  # CT budgets (>= 4)
    unknown = set(overrides) - set(recipe)
    if unknown:
        raise SystemExit(f"--recipe: unknown key(s) {sorted(unknown)}; known: {sorted(recipe)}")
    recipe.update(overrides)
    return recipe


def budgets(recipe: dict) -> list[int]:
    """X-token counts of the CT checkpoints: effect_points geometric steps from last / ct_budget_range to last."""
    n, last, span = int(recipe["effect_points"]), int(recipe["ct_x_tokens"]), float(recipe["ct_budget_range"])
    return sorted({round(last / span ** (1 - i / (n - 1))) for i in range(n)}) if n > 1 else [last]


class Scorer:
    """Scores model folders on a language's demo tasks and split, the paper's protocol per task."""

    def __init__(self, world, math_tokens: int = 48):
        from lrmerge.languages import DEMO_TASKS

        self.world, self.math_tokens, self.tasks = world, math_tokens, DEMO_TASKS
        self.answer = world.record()["config"].get("choice_answer", "letter")  # as the world's SFT data answers

    def _specs(self, lang: str, tasks) -> list:
        from dataclasses import replace

        from lrmerge.eval.tasks import tasks_for_language

        from lrmerge.data.schema import ChoiceItem

        specs = tasks_for_language(lang, list(tasks))  # the demo's worked answers are short: cap generation
        return [replace(s, max_new_tokens=self.math_tokens) if s.scorer == "number"
                else replace(s, answer=self.answer) if s.item_type is ChoiceItem else s for s in specs]

    def __call__(self, model_dir, lang: str, split: str, tasks=None) -> list[tuple[str, str, float, int]]:
        from lrmerge.eval.runner import evaluate, load_model

        specs = self._specs(lang, tasks or self.tasks)
        model, tokenizer = load_model(model_dir, "cpu")  # once for both protocols
        rows = []
        mc = [s for s in specs if s.scorer == "letter"]
        gen = [s for s in specs if s.scorer != "letter"]
        for group, mode in ((mc, "loglik"), (gen, "generate")):
            if not group:
                continue
            results = evaluate(model, group, split=split, source=self.world.eval_dir, lang=lang, mode=mode,
                               batch_size=64, device="cpu", tokenizer=tokenizer, progress=False)
            for spec in group:
                r = results.tasks[spec.name]
                rows.append((spec.benchmark, mode, 100.0 * r.accuracy, r.n))
        if split == "test" and tasks is None and lang != "eng":  # the "Lang." probe: held-out X perplexity
            from lrmerge.eval.perplexity import perplexity
            from lrmerge.demo.probes import heldout_texts

            texts = heldout_texts(self.world, lang, 100)
            rows.append(("heldout_ppl", "perplexity", perplexity(model, tokenizer, texts), len(texts)))
        return rows


def run(args) -> dict:
    import torch

    from lrmerge.demo import build_world, profile_config
    from lrmerge.eval.grid import MergeCandidate
    from lrmerge.merge import merge
    from lrmerge.runs import atomic_write_text, config_key, library_versions
    from lrmerge.train.config import BatchConfig, CorpusSource, CTConfig, OptimConfig, SFTConfig
    from lrmerge.train.ct import checkpoint_dir, run_ct
    from lrmerge.train.sft import run_sft

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    world_cfg = profile_config(args.profile, seed=args.world_seed, **dict(args.world))
    recipe = recipe_for(args.profile, dict(args.recipe))
    x_budgets = budgets(recipe)
    timings: list[tuple[str, str, int, float]] = []  # (phase, lang, seed, seconds)

    def timed(phase, lang, seed, fn, *a, **k):
        start = time.perf_counter()
        result = fn(*a, **k)
        timings.append((phase, lang, seed, time.perf_counter() - start))
        return result

    world = timed("world+BASE", "", -1, build_world, world_cfg, root=args.world_root, progress=False)
    score = Scorer(world)
    work = out / "models" / config_key({"world": world.root.name, "recipe": recipe})
    rows: list[dict] = []

    def add(lang, model, seed, ct_tokens, scored):
        for task, protocol, value, n in scored:
            rows.append(dict(language=lang, model=model, seed=seed, ct_tokens=ct_tokens, task=task,
                             protocol=protocol, score=round(value, 3), n=n))

    def sft(stage, lang, start_model, folder, data, seed):
        """SFT-flan (from BASE, English replay) or CTSFT-X-flan / -mt (from CT-X, English and X replay; footnote 1)."""
        replay = [CorpusSource(path=world.en_replay)] + ([CorpusSource(path=world.corpus(lang))] if stage != "sft-flan" else [])
        config = SFTConfig(lang=lang, stage=stage, base_model=str(start_model), out_dir=Path(folder), seed=seed,
                           sft_files=[Path(data)], replay_corpora=replay, replay_share=recipe["sft_replay_share"],
                           epochs=recipe["sft_epochs"], max_len=recipe["sft_max_len"],
                           optim=OptimConfig(lr=recipe["sft_lr"], warmup_ratio=0.05),
                           batch=BatchConfig(seq_len=recipe["sft_max_len"], per_device_batch_size=recipe["sft_batch_size"]),
                           save_steps=10_000, cpu_threads=args.threads, group_by_length=True)
        return run_sft(config).model_dir

    def merged(candidate, sft_dir, ct_dir, folder):
        return merge(candidate.to_config(str(world.base), str(sft_dir), [str(ct_dir)]), folder, device="cpu",
                     overwrite=True, progress=False)

    base_scores = {lang: timed("eval", lang, -1, score, world.base, lang, "test") for lang in args.langs}
    base_eng = timed("eval", "eng", -1, score, world.base, "eng", "dev")
    for seed in range(args.seeds):
        flan = timed("sft", "eng", seed, sft, "sft-flan", "eng", world.base, work / f"s{seed}" / "sft-flan",
                     world.sft_flan, seed)
        add("eng", "BASE", seed, 0, base_eng)
        add("eng", "SFT-flan", seed, 0, timed("eval", "eng", seed, score, flan, "eng", "dev"))
        for lang in args.langs:
            add(lang, "BASE", seed, 0, base_scores[lang])
            add(lang, "SFT-flan", seed, 0, timed("eval", lang, seed, score, flan, lang, "test"))
            ct_out = work / f"s{seed}" / f"ct-{lang}"
            totals = [round(x / (1 - recipe["ct_replay_share"])) for x in x_budgets]  # X + replay at each checkpoint
            ct_cfg = CTConfig(lang=lang, base_model=str(world.base), out_dir=ct_out, seed=seed,
                              x_corpus=CorpusSource(path=world.corpus(lang)),
                              replay_corpus=CorpusSource(path=world.en_replay), replay_share=recipe["ct_replay_share"],
                              x_tokens=x_budgets[-1], checkpoint_tokens=totals,
                              optim=OptimConfig(lr=recipe["ct_lr"], warmup_ratio=0.05,
                                                embedding_lr_multiplier=recipe["ct_embedding_lr_multiplier"]),
                              batch=BatchConfig(seq_len=recipe["ct_seq_len"], per_device_batch_size=recipe["ct_batch_size"]),
                              save_steps=10_000, cpu_threads=args.threads,
                              shuffle_documents=True)  # the seed orders the CT data
            timed("ct", lang, seed, run_ct, ct_cfg)
            cts = {x: checkpoint_dir(ct_out, t) for x, t in zip(x_budgets, totals)}
            for x, ct in cts.items():
                add(lang, f"CT-{lang}", seed, x, timed("eval", lang, seed, score, ct, lang, "test"))
                ctsft = timed("sft", lang, seed, sft, "ctsft-flan", lang, ct, work / f"s{seed}" / f"ctsft-flan-{lang}-{x}",
                              world.sft_flan, seed)
                add(lang, f"CTSFT-{lang}-flan", seed, x, timed("eval", lang, seed, score, ctsft, lang, "test"))
                candidate = timed("merge", lang, seed, pick_ties, args, score, merged, flan, ct, lang,
                                  work / f"s{seed}" / "grid")
                folder = timed("merge", lang, seed, merged, candidate, flan, ct, work / f"s{seed}" / "merged")
                add(lang, f"TIES-{lang}-flan", seed, x, timed("eval", lang, seed, score, folder, lang, "test"))
            last = cts[x_budgets[-1]]
            mt = timed("sft", lang, seed, sft, "ctsft-mt", lang, last, work / f"s{seed}" / f"ctsft-mt-{lang}",
                       world.sft_mt(lang), seed)
            add(lang, f"CTSFT-{lang}-mt", seed, x_budgets[-1], timed("eval", lang, seed, score, mt, lang, "test"))
            best_w, best = None, -1.0
            for w in [float(v) for v in str(recipe["wavg_weights"]).split(",") if v.strip()]:
                cand = MergeCandidate("linear", weight_sft=w, weight_ct=1.0 - w)
                folder = timed("merge", lang, seed, merged, cand, flan, last, work / f"s{seed}" / "merged")
                dev = timed("eval", lang, seed, score, folder, lang, "dev", MC_TASKS)
                if sum(r[2] for r in dev) > best:
                    best_w, best = w, sum(r[2] for r in dev)
            folder = merged(MergeCandidate("linear", weight_sft=best_w, weight_ct=1.0 - best_w), flan, last,
                            work / f"s{seed}" / "merged")
            add(lang, f"WAVG-{lang}-flan", seed, x_budgets[-1], timed("eval", lang, seed, score, folder, lang, "test"))
        shutil.rmtree(work / f"s{seed}" / "merged", ignore_errors=True)  # merges are cheap to redo
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "scores.csv", _csv(rows, FIELDS))  # after every seed: a long run leaves results

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "scores.csv", _csv(rows, FIELDS))
    atomic_write_text(out / "timings.csv", _csv([dict(phase=p, language=l, seed=s, seconds=round(t, 2))
                                                 for p, l, s, t in timings], ("phase", "language", "seed", "seconds")))
    record = {"config": {"world": world_cfg.to_dict(), "recipe": recipe, "budgets_x_tokens": x_budgets,
                         "ties": args.ties_grid or f"paper k_sft={PAPER_TIES[0]} k_ct={PAPER_TIES[1]}",
                         "langs": args.langs, "seeds": list(range(args.seeds)), "threads": args.threads,
                         "profile": args.profile},
              "world": str(world.root), "versions": library_versions(),
              "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv[1:]}
    atomic_write_text(out / "lrmerge_run.json", json.dumps(record, indent=2, default=str) + "\n")
    return {"rows": rows, "timings": timings, "budgets": x_budgets}


def pick_ties(args, score, merged, flan, ct, lang, folder):
    from lrmerge.eval.grid import MergeCandidate

    if not args.ties_grid:
        return MergeCandidate("ties", density_sft=PAPER_TIES[0], density_ct=PAPER_TIES[1])
    densities = [float(d) for d in args.ties_grid.split(",")]
    best, best_score = None, -1.0
    for ks in densities:
        for kc in densities:
            cand = MergeCandidate("ties", density_sft=ks, density_ct=kc)
            dev = score(merged(cand, flan, ct, folder), lang, "dev", MC_TASKS)
            if sum(r[2] for r in dev) > best_score:
                best, best_score = cand, sum(r[2] for r in dev)
    return best


def _csv(rows: list[dict], fields) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------- the comparisons

def paper_score(rows, lang, model, seed, ct_tokens=None, tasks=None) -> dict[str, float]:
    """task -> score of one model and seed (loglik for multiple choice, generate for math)."""
    return {r["task"]: r["score"] for r in rows
            if r["protocol"] in ("loglik", "generate") and r["language"] == lang and r["model"] == model and r["seed"] == seed
            and (ct_tokens is None or r["ct_tokens"] == ct_tokens) and (tasks is None or r["task"] in tasks)}


def mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else float("nan")
    return mean, se


def report(result: dict, chance: dict[str, float], langs, seeds: int) -> str:
    rows, x_budgets = result["rows"], result["budgets"]
    lines = []
    fmt = lambda m, s: f"{m:5.1f} ± {s:4.1f}"  # noqa: E731
    lines.append("SFT-flan on English dev (mean ± SE over seeds; chance; gate chance + 30):")
    for task in ("sib200", "belebele", "mgsm", "mlic_rs"):
        vals = [paper_score(rows, "eng", "SFT-flan", s).get(task) for s in range(seeds)]
        vals = [v for v in vals if v is not None]
        if vals:
            m, se = mean_se(vals)
            c = chance.get(task, 0.0)
            lines.append(f"  {task:9s} {fmt(m, se)}  chance {c:4.1f}  {'PASS' if m >= c + 30 else 'fail'}")
    for lang in langs:
        lines.append(f"[{lang}] BASE and CT-{lang} on X test, multiple choice (loglik) vs chance "
                     "(SE: binomial for BASE, over seeds for CT):")
        for task in MC_TASKS:
            b = paper_score(rows, lang, "BASE", 0).get(task)
            n = next(r["n"] for r in rows if r["language"] == lang and r["task"] == task)
            c = chance[task]
            se_b = math.sqrt(c / 100 * (1 - c / 100) / n) * 100
            parts = [f"BASE {b:5.1f} ({(b - c) / se_b:+.1f} SE)"]
            for x in x_budgets:
                vals = [paper_score(rows, lang, f"CT-{lang}", s, x).get(task) for s in range(seeds)]
                m, se = mean_se(vals)
                parts.append(f"CT@{x // 1000}K {m:5.1f} ({(m - c) / max(se, se_b):+.1f} SE)")
            lines.append(f"  {task:9s} chance {c:4.1f}: " + "  ".join(parts))
        avg = lambda model, s, x=None: _avg(paper_score(rows, lang, model, s, x))  # noqa: E731
        last = x_budgets[-1]
        lines.append(f"[{lang}] average over tasks at {last // 1000}K X tokens (mean ± SE over seeds):")
        for model in ("BASE", "SFT-flan", f"CT-{lang}", f"CTSFT-{lang}-flan", f"CTSFT-{lang}-mt", f"TIES-{lang}-flan",
                      f"WAVG-{lang}-flan"):
            x = None if model in ("BASE", "SFT-flan") else last
            m, se = mean_se([avg(model, s, x) for s in range(seeds)])
            per_task = {t: mean_se([paper_score(rows, lang, model, s, x)[t] for s in range(seeds)])[0]
                        for t in ("sib200", "belebele", "mgsm", "mlic_rs")}
            lines.append(f"  {model:16s} {fmt(m, se)}   " + " ".join(f"{t} {v:5.1f}" for t, v in per_task.items()))
        d = [avg(f"CTSFT-{lang}-flan", s, last) - avg(f"CTSFT-{lang}-mt", s, last) for s in range(seeds)]
        m, se = mean_se(d)
        lines.append(f"  CTSFT-flan minus CTSFT-mt: {fmt(m, se)} ({'-mt < -flan' if m > 0 else '-mt >= -flan'})")
        ppl = lambda model, x: mean_se([next(r["score"] for r in rows if r["language"] == lang and r["model"] == model  # noqa: E731
                                            and r["seed"] == s and r["ct_tokens"] == x and r["protocol"] == "perplexity")
                                       for s in range(seeds)])[0]
        lines.append(f"[{lang}] held-out {lang} perplexity (forgetting probe; BASE {ppl('BASE', 0):.1f}, SFT-flan "
                     f"{ppl('SFT-flan', 0):.1f}): " + "; ".join(
                         f"{x // 1000}K CT {ppl(f'CT-{lang}', x):.1f} CTSFT {ppl(f'CTSFT-{lang}-flan', x):.1f} "
                         f"TIES {ppl(f'TIES-{lang}-flan', x):.1f}" for x in x_budgets))
        lines.append(f"[{lang}] TIES-{lang}-flan minus CTSFT-{lang}-flan per CT budget (average over tasks; "
                     "SE of the per-seed difference; SIB alone in brackets):")
        for x in x_budgets:
            d = [avg(f"TIES-{lang}-flan", s, x) - avg(f"CTSFT-{lang}-flan", s, x) for s in range(seeds)]
            ds = [paper_score(rows, lang, f"TIES-{lang}-flan", s, x)["sib200"]
                  - paper_score(rows, lang, f"CTSFT-{lang}-flan", s, x)["sib200"] for s in range(seeds)]
            m, se = mean_se(d)
            ms, ses = mean_se(ds)
            t_avg = mean_se([avg(f"TIES-{lang}-flan", s, x) for s in range(seeds)])[0]
            c_avg = mean_se([avg(f"CTSFT-{lang}-flan", s, x) for s in range(seeds)])[0]
            verdict = "TIES wins (>2 SE)" if se == se and m > 2 * se else ""
            lines.append(f"  {x:>8d} X tokens: TIES {t_avg:5.1f} CTSFT {c_avg:5.1f} diff {fmt(m, se)} "
                         f"[SIB {fmt(ms, ses)}] {verdict}")
    by_phase: dict[str, float] = {}
    for phase, _, _, t in result["timings"]:
        by_phase[phase] = by_phase.get(phase, 0.0) + t
    lines.append("time per phase (s, all seeds and languages; shared CPU, noisy): "
                 + ", ".join(f"{p} {t:.1f}" for p, t in by_phase.items()))
    return "\n".join(lines)


def chance_levels(eval_dir, lang: str) -> dict[str, float]:
    """Random guessing per benchmark, in percent (1 / number of options; 0 for math)."""
    from lrmerge.data.loaders import load_task
    from lrmerge.data.schema import ChoiceItem, ClassificationItem
    from lrmerge.languages import DEMO_TASKS

    levels = {}
    for benchmark in DEMO_TASKS:
        data = load_task(benchmark, lang, "test", eval_dir)
        item = data.items[0]
        levels[benchmark] = (100.0 / len(data.labels) if isinstance(item, ClassificationItem)
                             else 100.0 / len(item.options) if isinstance(item, ChoiceItem) else 0.0)
    return levels


def _avg(scores: dict[str, float]) -> float:
    return sum(scores.values()) / len(scores)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    result = run(args)
    from lrmerge.demo import build_world, profile_config
    world = build_world(profile_config(args.profile, seed=args.world_seed, **dict(args.world)), root=args.world_root)
    chance = chance_levels(world.eval_dir, args.langs[0])
    text = report(result, chance, args.langs, args.seeds)
    print(text)
    from lrmerge.runs import atomic_write_text

    atomic_write_text(Path(args.out) / "report.txt", text + f"\ntotal {time.perf_counter() - start:.1f} s\n")
    print(f"total {time.perf_counter() - start:.1f} s; outputs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
