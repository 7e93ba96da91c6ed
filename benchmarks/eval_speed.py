"""Evaluation speed: lrmerge vs lm-evaluation-harness's `hf` model on the same model, items and prompts.

Builds a random Llama (hidden 256, 4 layers) over the tiny byte-fallback tokenizer, writes a Belebele-shaped
multiple-choice task (our prompts, letter continuations " A".." D") as local JSONL plus an lm-eval task YAML in a
temporary folder, and scores it with both in the same run (each timed on its second call, after a warm-up call).
Prints examples/s, the ratio (target: lrmerge >= 1.0x), both accuracies (target: within 0.5 points) and how many
items get the same prediction. Also times batched greedy generation against one-by-one ``model.generate``.

    python benchmarks/eval_speed.py [--n 300] [--batch-size 16] [--device cpu]

lm-eval is an optional extra: pip install lm-eval==0.4.13 (or pip install -e '.[eval]').
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

WORDS = "the a of to and in is it that was for on are with as his they be at one have this from travel sports health".split()


def make_items(n: int, seed: int = 0):
    from lrmerge.data.schema import ChoiceItem

    rng = random.Random(seed)
    sentence = lambda k: " ".join(rng.choice(WORDS) for _ in range(k))  # noqa: E731
    return [ChoiceItem(str(i), sentence(rng.randint(20, 60)), sentence(8) + "?", tuple(sentence(4) for _ in range(4)),
                       rng.randrange(4)) for i in range(n)]


def write_lm_eval_task(folder: Path, spec, items) -> str:
    rows = [{"prompt": spec.build_prompt(item)[0], "label": item.answer} for item in items]
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "lrmerge_speed.yaml").write_text(
        "task: lrmerge_speed\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'items.jsonl'}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: prompt\n"
        'doc_to_choice: ["A", "B", "C", "D"]\n'
        "doc_to_target: label\n"
        'target_delimiter: " "\n'
        "metric_list:\n  - metric: acc\n")
    return "lrmerge_speed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-generate", type=int, default=32)
    args = parser.parse_args()
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        print("lm-eval is not installed: pip install lm-eval==0.4.13  (the optional extra '.[eval]')", file=sys.stderr)
        return 2
    import torch

    from lrmerge.eval.generate import greedy_generate
    from lrmerge.eval.runner import evaluate
    from lrmerge.eval.tasks import task_for
    from lrmerge.eval.testing import tiny_llama, tiny_tokenizer

    torch.set_num_threads(max(1, torch.get_num_threads()))
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, hidden_size=256, num_layers=4, seed=0).to(args.device)
    spec = task_for("belebele", "bench")
    items = make_items(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model.save_pretrained(tmp / "model")
        tokenizer.save_pretrained(tmp / "model")
        task = write_lm_eval_task(tmp, spec, items)
        manager = TaskManager(include_path=str(tmp))
        lm = HFLM(pretrained=str(tmp / "model"), tokenizer=str(tmp / "model"), device=args.device,
                  batch_size=args.batch_size, dtype="float32", add_bos_token=True)

        def run_lm_eval():
            return lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=manager, log_samples=True,
                                           verbosity="ERROR")

        def run_ours():
            return evaluate(model, [spec], tokenizer=tokenizer, items={spec.name: items}, mode="loglik",
                            batch_size=args.batch_size, device=args.device, progress=False)

        timings = {}
        for name, fn in (("lm-eval", run_lm_eval), ("lrmerge", run_ours)):
            fn()  # warm-up: dataset build, caches, kernels
            start = time.perf_counter()
            output = fn()
            timings[name] = (time.perf_counter() - start, output)
    (t_ref, ref), (t_ours, ours) = timings["lm-eval"], timings["lrmerge"]
    acc_ref = ref["results"][task]["acc,none"]
    acc_ours = ours.tasks[spec.name].accuracy
    ref_pred = {int(s["doc_id"]): max(range(4), key=lambda o: s["filtered_resps"][o][0]) for s in ref["samples"][task]}
    same = sum(ref_pred[i] == "ABCD".index(r["parsed"]) for i, r in enumerate(ours.tasks[spec.name].records))
    print(f"device {args.device}, n={args.n}, batch {args.batch_size}, model hidden 256 x 4 layers, loglik over ' A'..' D'")
    print(f"lm-eval hf : {args.n / t_ref:8.1f} examples/s  ({t_ref:.2f} s)  acc {100 * acc_ref:.2f}")
    print(f"lrmerge    : {args.n / t_ours:8.1f} examples/s  ({t_ours:.2f} s)  acc {100 * acc_ours:.2f}")
    print(f"speed ratio lrmerge / lm-eval: {t_ref / t_ours:.2f}x   accuracy gap {100 * abs(acc_ref - acc_ours):.2f} points"
          f"   same prediction on {same}/{args.n} items")

    prompts = [spec.build_prompt(item)[0] for item in items[:args.n_generate]]
    start = time.perf_counter()
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").to(args.device)
        with torch.no_grad():
            model.generate(**ids, max_new_tokens=spec.max_new_tokens, do_sample=False, stop_strings=list(spec.stop),
                           tokenizer=tokenizer)
    t_single = time.perf_counter() - start
    start = time.perf_counter()
    greedy_generate(model, tokenizer, prompts, spec.max_new_tokens, spec.stop, args.batch_size, args.device, progress=False)
    t_batched = time.perf_counter() - start
    print(f"generate (max_new_tokens {spec.max_new_tokens}, stop {spec.stop!r}): one-by-one HF generate (same stop) "
          f"{len(prompts) / t_single:.1f} ex/s, lrmerge batched {len(prompts) / t_batched:.1f} ex/s, "
          f"ratio {t_single / t_batched:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
