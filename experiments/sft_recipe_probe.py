"""Which SFT recipe keeps the demo's gates? SFT-flan (English dev) and, per language, CTSFT-X-flan and CTSFT-X-mt
from the last CT checkpoint of a finished study, for one recipe and N seeds; scored with the tables' protocol.

    python experiments/sft_recipe_probe.py RUN_ROOT [--epochs 2] [--lr 1.5e-3] [--batch-size 8] [--items N]
        [--seeds 0,1,2] [--langs mnx] [--out runs/experiments/sft-probe]

RUN_ROOT is the run folder of a `lrmerge study` (its data, pretraining and world are reused; its evaluation cache
too). The recipe is the study's own (its SFT stage's run record) with the flags given changed, so a probe without
flags retrains the study's models and scores them as the study did. ``--items N`` trains on the first N records of
each SFT file (the world writes them in a seeded random order, so a prefix keeps the task mix). Writes
<out>/<recipe>/scores.csv and prints the per-task means, per seed CTSFT-X-flan − CTSFT-X-mt (the -mt finding of
issue #15), and for math each model's answers without a number and the share of its most common answer (a model
that answers one number to every question scores about `pipeline.chance_level`'s math chance).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_root")
    parser.add_argument("--epochs", type=float, help="passes over the SFT data (default: the study's)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the study's)")
    parser.add_argument("--batch-size", type=int, help="examples per step (default: the study's)")
    parser.add_argument("--items", type=int, help="train on the first N records of each SFT file (default: all)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--langs", default="mnx")
    parser.add_argument("--out", default="runs/experiments/sft-probe")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from lrmerge import pipeline
    from lrmerge.runs import atomic_write_text, read_run_record
    from lrmerge.train.launch import train

    torch.set_num_threads(1)
    langs = pipeline.parse_names(args.langs)
    record = read_run_record(pipeline.stage_dir(args.run_root, langs[0], "sft"))
    if record is None:
        raise SystemExit(f"{pipeline.stage_dir(args.run_root, langs[0], 'sft')}: no SFT run record (run the study first)")
    study = record["config"]
    recipe = {key: study[key] for key in ("epochs", "lr", "batch_size", "grad_accum", "max_len", "replay_share",
                                          "precision", "group_by_length")}
    recipe.update({key: value for key, value in (("epochs", args.epochs), ("lr", args.lr),
                                                  ("batch_size", args.batch_size)) if value is not None})
    if args.items is not None and args.items < 1:
        raise SystemExit(f"--items: {args.items}; give 1 or more records")
    tag = f"bs{recipe['batch_size']}-lr{recipe['lr']:g}-ep{recipe['epochs']:g}"
    tag += f"-items{args.items}" if args.items else ""
    out = Path(args.out) / tag

    copies = {}

    def sft_data(path):
        """The SFT file, or a copy of its first --items records under <out>/sft-data/ (written once per file)."""
        if not args.items:
            return path
        if path not in copies:
            rows = Path(path).read_text().splitlines(keepends=True)[:args.items]
            copies[path] = out / "sft-data" / f"{Path(path).stem}-first{args.items}.jsonl"
            copies[path].parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(copies[path], "".join(rows))
        return copies[path]

    options = dict(cache_dir=Path(args.run_root) / "eval_cache", batch_size=32, device="cpu", math_max_new_tokens=64)
    frames, start = [], time.perf_counter()
    for seed in pipeline.parse_seeds(args.seeds):
        for i, lang in enumerate(langs):
            source = pipeline.read_source(args.run_root, lang)
            last = pipeline.read_manifest(args.run_root, lang, "pretraining")["seeds"][str(seed)]["last"]
            flan, mt = sft_data(source.sft_flan), sft_data(source.sft_mt)
            runs = [("ctsft-flan", last, flan), ("ctsft-mt", last, mt)]
            if i == 0:
                runs.insert(0, ("sft-flan", source.base, flan))
            models = {}
            for stage, start_model, data in runs:
                config = pipeline.sft_config(source, stage, start_model, out / f"seed-{seed}" / f"{lang}-{stage}", data,
                                             seed=seed, **recipe)
                models[stage] = str(train(config, launcher="inline").model_dir)
            test = {"CTSFT-X-flan": models["ctsft-flan"], "CTSFT-X-mt": models["ctsft-mt"]}
            frames.append(pipeline.evaluate_models(test, source, "test", seed=seed, protocols="study", **options))
            for name, folder in test.items():
                print(f"seed {seed} {lang} {name} math: {math_answers(folder, source, options)}")
            if "sft-flan" in models:
                english = source.model_copy(update={"lang": "eng"})
                frames.append(pipeline.evaluate_models({"SFT-flan": models["sft-flan"]}, english, "dev", seed=seed,
                                                       protocols="study", **options))
    scores = pd.concat(frames, ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "scores.csv", scores.to_csv(index=False))
    print(scores.pivot_table(index=["language", "model"], columns="task", values="score", aggfunc="mean").round(1))
    x = scores[scores["language"] != "eng"]
    average = x.groupby(["language", "model", "seed"])["score"].mean().unstack("model")
    print((average["CTSFT-X-flan"] - average["CTSFT-X-mt"]).round(2).rename("flan - mt"))
    print(f"{tag}: {time.perf_counter() - start:.0f} s")


def math_answers(model_dir, source, options: dict) -> str:
    """How a model answers the source's math test: accuracy, answers without a number, its most common answer
    (read from the evaluation cache `pipeline.evaluate_models` has just filled with ``options``)."""
    from collections import Counter

    from lrmerge import pipeline
    from lrmerge.eval.runner import evaluate_protocols

    specs = [s for s in pipeline.study_tasks(source, math_max_new_tokens=options["math_max_new_tokens"])
             if s.scorer != "letter"]
    parts = []
    for spec in specs:
        result = evaluate_protocols(model_dir, [spec], ["generate"], split="test", source=source.eval_source,
                                    batch_size=options["batch_size"], device=options["device"], lang=source.lang,
                                    cache_dir=pipeline.model_cache_dir(options["cache_dir"], model_dir),
                                    limit=source.eval_limit.get("test"), progress=False)["generate"].tasks[spec.name]
        answer, count = Counter(r["parsed"] for r in result.records).most_common(1)[0]
        parts.append(f"{spec.benchmark} {100 * result.accuracy:.1f}%, no number in {result.n_unparsable} of {result.n}, "
                     f"most common answer {answer} in {count}")
    return "; ".join(parts) or "no math task"


if __name__ == "__main__":
    main()
