"""What a real (paper-profile) run needs, checked before any work starts.

A real run of one language downloads Llama-2-7B, the CT corpus, the SFT data and the evaluation sets from the
Hugging Face hub and trains on GPUs. On a machine without a GPU, or with the hub switched off, it stops at once with
a message listing what it would download, instead of failing deep inside a notebook.
"""

from __future__ import annotations

import os

from lrmerge.languages import get_language

BASE_MODEL_ID = "meta-llama/Llama-2-7b-hf"
SFT_DATA_IDS = ("Muennighoff/flan", "openai/gsm8k")  # FLAN collection and GSM8K (section 4)
TRANSLATION_MODEL_ID = "facebook/nllb-200-distilled-1.3B"  # the -mt SFT data (footnote 2)


class RealRunUnavailable(RuntimeError):
    """A real run cannot start on this machine; the message says why and what it would download."""


def real_run_downloads(lang: str) -> list[str]:
    """Hub ids a real run of ``lang`` reads: model, CT corpus, SFT data, MT model and evaluation sets."""
    config = get_language(lang)
    if config.is_demo:
        raise ValueError(f"language {lang!r} belongs to the embedded demo world; use --profile demo or quick")
    corpus = config.ct_corpus
    items = [f"model {BASE_MODEL_ID}"]
    if corpus is not None and corpus.hub_id:
        items.append(f"CT corpus {corpus.name}: {corpus.hub_id} (subset {corpus.subset}, "
                     f"{(corpus.tokens_used or 0) / 1e9:.2f}B tokens)")
    items += [f"SFT data {dataset}" for dataset in SFT_DATA_IDS]
    items.append(f"translation model {TRANSLATION_MODEL_ID} (for CTSFT-{lang}-mt)")
    for task in config.tasks:
        items.append(f"evaluation {task}: {config.task_sources[task]} ({config.benchmark_code(task)})")
    return items


def check_real_run(lang: str) -> None:
    """Raise RealRunUnavailable unless this machine has a CUDA GPU and hub access."""
    import torch

    downloads = real_run_downloads(lang)
    problems = []
    if not torch.cuda.is_available():
        problems.append("no CUDA GPU (continual pre-training of a 7B model needs several GPUs; see configs/accelerate/)")
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        problems.append("the Hugging Face hub is switched off (HF_HUB_OFFLINE is set)")
    if problems:
        listing = "\n  - ".join(downloads)
        raise RealRunUnavailable(
            f"the paper profile for {lang!r} needs the hub and a GPU, and this machine has "
            + " and ".join(problems) + f".\nIt would download:\n  - {listing}\n"
            "Run the embedded demo instead (make study), or run this on a GPU machine with hub access."
        )
