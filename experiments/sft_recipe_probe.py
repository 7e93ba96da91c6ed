"""Which SFT recipe keeps the demo's gates? SFT-flan (English dev) and, per language, CTSFT-X-flan and CTSFT-X-mt
from the last CT checkpoint of a finished study, for one recipe and N seeds; scored with the tables' protocol.

    python experiments/sft_recipe_probe.py RUN_ROOT [--epochs 2] [--lr 1.5e-3] [--batch-size 8] [--seeds 0,1,2]
        [--langs mnx] [--out runs/experiments/sft-probe]

RUN_ROOT is the run folder of a `lrmerge study` (its data, pretraining and world are reused; its evaluation cache
too). The recipe is the study's own (its SFT stage's run record) with the flags given changed, so a probe without
flags retrains the study's models and scores them as the study did. Writes <out>/<recipe>/scores.csv and prints the
per-task means and, per seed, CTSFT-X-flan − CTSFT-X-mt (the -mt finding of issue #15).
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
    tag = f"bs{recipe['batch_size']}-lr{recipe['lr']:g}-ep{recipe['epochs']:g}"
    out = Path(args.out) / tag
    options = dict(cache_dir=Path(args.run_root) / "eval_cache", batch_size=32, device="cpu", math_max_new_tokens=64)
    frames, start = [], time.perf_counter()
    for seed in pipeline.parse_seeds(args.seeds):
        for i, lang in enumerate(langs):
            source = pipeline.read_source(args.run_root, lang)
            last = pipeline.read_manifest(args.run_root, lang, "pretraining")["seeds"][str(seed)]["last"]
            runs = [("ctsft-flan", last, source.sft_flan), ("ctsft-mt", last, source.sft_mt)]
            if i == 0:
                runs.insert(0, ("sft-flan", source.base, source.sft_flan))
            models = {}
            for stage, start_model, data in runs:
                config = pipeline.sft_config(source, stage, start_model, out / f"seed-{seed}" / f"{lang}-{stage}", data,
                                             seed=seed, **recipe)
                models[stage] = str(train(config, launcher="inline").model_dir)
            test = {"CTSFT-X-flan": models["ctsft-flan"], "CTSFT-X-mt": models["ctsft-mt"]}
            frames.append(pipeline.evaluate_models(test, source, "test", seed=seed, protocols="study", **options))
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


if __name__ == "__main__":
    main()
