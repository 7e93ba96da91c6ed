"""Which task designs can SFT-flan learn on the demo's tiny BASE? (issue #15, item 1)

Takes a built demo world (its BASE, lexicon and samplers), writes an English SFT mix of task *variants*, fine-tunes
BASE on it the study's way (`lrmerge.train.sft.run_sft`) and scores English dev items of the same variants:
multiple choice by the log-likelihood of the option letters ("loglik"), of the letter followed by the option text
("loglik_text"), and by parsed greedy generation ("generate"); math by generation.

    python experiments/task_probe.py --world runs/world/<key> --variant rc=allin --variant answer=letter_text \
        [--items topic=400,reading=400,selection=300,math=400] [--epochs 3] [--lr 1e-3] [--seed 0]

Variants: rc = grounded (the package's: one option in the passage) | allin (every option is an object of the
passage; the question's verb picks one); rs = topic (the package's, world format 5: one-word replies on four topics)
| subject (the four replies differ only in their subject, each a noun of the dialogue; the right one takes up the
last turn's object); answer = letter | letter_text (SFT target " B. <option text>"); max_operand = largest math
operand. (World format 4's whole-clause coherent replies were measured with this script before they were replaced.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", required=True)
    p.add_argument("--variant", action="append", default=[])
    p.add_argument("--items", default="topic=400,reading=400,selection=300,math=400")
    p.add_argument("--dev", type=int, default=100, help="English dev items per task")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/experiments/task_probe")
    p.add_argument("--langs", default="eng", help="also score these (X dev items rendered from the same structures)")
    args = p.parse_args(argv)
    args.variant = dict(v.split("=", 1) for v in args.variant)
    args.items = {k: int(v) for k, v in (x.split("=") for x in args.items.split(","))}
    return args


def world_parts(world_root: Path):
    from lrmerge.demo.config import BaseModelConfig, WorldConfig
    from lrmerge.demo.grammar import ClauseSampler, build_collocations
    from lrmerge.demo.lexicon import build_lexicon, topic_words

    record = json.loads((world_root / "world.json").read_text())["config"]
    record["base"] = BaseModelConfig(**record["base"])
    record["languages"] = tuple(record["languages"])
    config = WorldConfig(**record)
    table = topic_words(config.n_topics, config.topic_nouns, config.topic_verbs)
    lexicon = build_lexicon(config.seed, table, config.loanword_share, tbx_spelling=config.tbx_spelling)
    col = build_collocations(config.seed, table)
    sampler = ClauseSampler(table, config.topic_purity, config.named_entities, config.digits, collocations=col,
                            collocation_strength=config.collocation_strength)
    eval_sampler = ClauseSampler(table, config.topic_purity, config.named_entities, config.digits,
                                 avoid=lexicon.loanwords, collocations=col,
                                 collocation_strength=config.collocation_strength)
    return config, list(table), lexicon, sampler, eval_sampler


def reading_allin(rng, sampler, topics):
    """Four clauses with four distinct verbs and objects; options = the four object nouns; asks one clause."""
    from lrmerge.demo.grammar import Clause
    from lrmerge.demo.lexicon import NAMES
    from lrmerge.demo.tasks import ReadingItem

    topic = rng.choice(topics)
    names = rng.sample(NAMES, 4)
    clauses = []
    while len(clauses) < 4:
        c = sampler.clause(rng, topic)
        if all(c.verb != d.verb and c.object[-1] != d.object[-1] for d in clauses):
            clauses.append(Clause((names[len(clauses)],), c.verb, c.object, c.place, c.year, topic))
    target = rng.randrange(4)
    options = [c.object[-1] for c in clauses]
    rng.shuffle(options)
    return ReadingItem(tuple(clauses), target, tuple(options), options.index(clauses[target].object[-1]))


def selection_subject(rng, sampler, topics):
    """Two turns; four replies with one predicate, their subjects four nouns of the dialogue (subjects and objects);
    the right reply's subject is the last turn's object (it takes the dialogue up)."""
    from lrmerge.demo.grammar import Clause
    from lrmerge.demo.tasks import SelectionItem

    topic = rng.choice(topics)
    while True:
        context = (sampler.clause(rng, topic), sampler.clause(rng, topic))
        phrases = [context[0].subject, context[0].object, context[1].subject, context[1].object]
        if len({p[-1] for p in phrases}) == 4:
            break
    predicate = sampler.clause(rng, topic)
    replies = [Clause(p, predicate.verb, predicate.object, predicate.place, "", topic) for p in phrases]
    order = list(range(4))
    rng.shuffle(order)
    return SelectionItem(context, tuple(replies[i] for i in order), order.index(3))


def instances(task, n, rng, sampler, lexicon, topics, variant, lang="eng"):
    """(prompt, response, answer index or number, option texts) of n items of one task variant."""
    from lrmerge import prompts
    from lrmerge.demo.grammar import render
    from lrmerge.demo.tasks import (render_options, render_question, sample_math, sample_reading, sample_selection,
                                    translate_plain)

    out = []
    while len(out) < n:
        if task == "topic":
            topic = rng.choice(topics)
            clause = sampler.clause(rng, topic)
            prompt = prompts.topic_prompt(render(clause, lang, lexicon), topics)
            out.append((prompt, topics.index(topic), list(topics)))
        elif task == "reading":
            item = (reading_allin if variant.get("rc") == "allin" else sample_reading)(rng, sampler, topics)
            passage = " ".join(render(c, lang, lexicon) for c in item.passage)
            options = render_options(item.options, lang, lexicon)
            out.append((prompts.choice_prompt(passage, render_question(item, lang, lexicon), options), item.answer, options))
        elif task == "selection" and variant.get("rs") == "subject":
            item = selection_subject(rng, sampler, topics)
            context = "\n".join(render(c, lang, lexicon) for c in item.context)
            options = [render(c, lang, lexicon) for c in item.options]
            out.append((prompts.choice_prompt(context, prompts.RESPONSE_SELECTION_QUESTION, options), item.answer, options))
        elif task == "selection":  # the package's design (world format 5: one-word topical replies)
            item = sample_selection(rng, sampler, topics)
            context = "\n".join(render(c, lang, lexicon) for c in item.context)
            options = render_options(item.options, lang, lexicon)
            out.append((prompts.choice_prompt(context, prompts.RESPONSE_SELECTION_QUESTION, options), item.answer, options))
        else:
            problem = sample_math(rng, int(variant.get("max_operand", 9)))
            out.append((prompts.math_prompt(translate_plain(problem.question(), lang, lexicon)), problem, None))
    return out


def response(task, answer, options, variant):
    from lrmerge import prompts

    if task == "math":
        return prompts.math_answer(answer.answer, answer.rationale())
    if variant.get("answer") == "letter_text" and task != "topic":
        return f"{prompts.letter_answer(answer)}. {options[answer]}"
    return prompts.letter_answer(answer)


def score(model, tokenizer, task, dev, variant):
    import torch

    from lrmerge import prompts
    from lrmerge.eval.generate import greedy_generate, loglik_scores
    from lrmerge.eval.parse import parse_letter, parse_number

    rows = {}
    with torch.no_grad():
        if task == "math":
            gens = greedy_generate(model, tokenizer, [p for p, _, _ in dev], 48, ("\n\n", "\nQuestion:"), 64, "cpu",
                                   progress=False)
            rows["generate"] = sum(parse_number(g.text) == a.answer for g, (_, a, _) in zip(gens, dev)) / len(dev)
            return rows
        letters = [(p, [prompts.letter_answer(i) for i in range(len(o))]) for p, _, o in dev]
        scores = loglik_scores(model, tokenizer, letters, 64, "cpu", progress=False)
        rows["loglik"] = sum(max(range(len(s)), key=s.__getitem__) == a for s, (_, a, _) in zip(scores, dev)) / len(dev)
        if task != "topic":
            texts = [(p, [f"{prompts.letter_answer(i)}. {t}" for i, t in enumerate(o)]) for p, _, o in dev]
            scores = loglik_scores(model, tokenizer, texts, 64, "cpu", progress=False)
            rows["loglik_text"] = sum(max(range(len(s)), key=s.__getitem__) == a
                                      for s, (_, a, _) in zip(scores, dev)) / len(dev)
        gens = greedy_generate(model, tokenizer, [p for p, _, _ in dev], 12, ("\n",), 64, "cpu", progress=False)
        rows["generate"] = sum(parse_letter(g.text, prompts.OPTION_LETTERS[:len(o)]) == prompts.option_letter(a)
                               for g, (_, a, o) in zip(gens, dev)) / len(dev)
    return rows


def main(argv=None) -> int:
    import torch

    from lrmerge.eval.runner import load_model
    from lrmerge.runs import config_key
    from lrmerge.train.config import BatchConfig, CorpusSource, OptimConfig, SFTConfig
    from lrmerge.train.sft import run_sft

    args = parse_args(argv)
    torch.set_num_threads(1)
    world = Path(args.world)
    config, topics, lexicon, sampler, eval_sampler = world_parts(world)
    key = config_key({"world": world.name, "variant": args.variant, "items": args.items, "epochs": args.epochs,
                      "lr": args.lr, "seed": args.seed, "batch": args.batch})
    out = Path(args.out) / key
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"probe-sft-{args.seed}")
    rows = []
    for task, n in args.items.items():
        for prompt, answer, options in instances(task, n, rng, sampler, lexicon, topics, args.variant):
            rows.append({"prompt": prompt, "response": response(task, answer, options, args.variant), "task": task})
    random.Random(args.seed).shuffle(rows)
    data = out / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    start = time.perf_counter()
    cfg = SFTConfig(lang="eng", stage="sft-flan", base_model=str(world / "base"), out_dir=out / "sft-flan", seed=args.seed,
                    sft_files=[data], replay_corpora=[CorpusSource(path=world / "corpus" / "en_replay.txt")],
                    replay_share=0.05, epochs=args.epochs, max_len=320, optim=OptimConfig(lr=args.lr, warmup_ratio=0.05),
                    batch=BatchConfig(seq_len=320, per_device_batch_size=args.batch), save_steps=100_000,
                    cpu_threads=1, group_by_length=True)
    model_dir = run_sft(cfg).model_dir  # returns at once when this key's run finished before
    sft_s = time.perf_counter() - start
    report = {"variant": args.variant, "items": args.items, "epochs": args.epochs, "lr": args.lr, "seed": args.seed,
              "sft_s": round(sft_s, 1), "scores": {}}
    for name, path in (("BASE", world / "base"), ("SFT-flan", model_dir)):
        model, tokenizer = load_model(path, "cpu")
        for lang in args.langs.split(","):
            for task in args.items:
                dev = instances(task, args.dev, random.Random(f"probe-dev-{task}"),  # same items in every language
                                eval_sampler, lexicon, topics,
                                args.variant, lang)
                report["scores"][f"{name}/{lang}/{task}"] = {k: round(100 * v, 1) for k, v in
                                                             score(model, tokenizer, task, dev, args.variant).items()}
    report["total_s"] = round(time.perf_counter() - start, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
