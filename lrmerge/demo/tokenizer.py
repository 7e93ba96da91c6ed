"""BASE's tokenizer, Llama-2-like: BPE with byte fallback (256 `<0xNN>` tokens), trained on BASE's own data.

English plus the tbx trace make tbx letters (and frequent words) tokens; mnx never occurs, so its letters fall back
to 3 UTF-8 byte tokens each, as Llama-2 encodes Odia or traditional Mongolian. No vocabulary extension later.
"""

from __future__ import annotations

import json
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
BYTE_TOKENS = tuple(f"<0x{i:02X}>" for i in range(256))


def prompt_alphabet(labels: list[str], repeats: int) -> list[str]:
    """Every prompt template of `lrmerge.prompts` with every answer letter, for the tokenizer only.

    BASE never trains on these lines (its corpus has no "Answer:"; lone option letters only in the matching
    exercises of `WorldConfig.exercise_share`, a different format), but its tokenizer must know them, as Llama-2's does: each answer " A".." J" after "Answer:" is
    one token and ":" is no byte token. `repeats` copies make the letter pairs frequent enough for BPE to merge
    (the builder uses 1 copy per 100 corpus lines).
    """
    from lrmerge import prompts

    lines = []
    for i in range(len(prompts.OPTION_LETTERS)):
        lines.append(prompts.topic_prompt("text", labels) + prompts.letter_answer(i))
        lines.append(prompts.choice_prompt("passage", "question", ["one", "two", "three", "four"]) + prompts.letter_answer(i))
    lines.append(prompts.math_prompt("question") + prompts.math_answer(12, "rationale"))
    return [line for line in lines for _ in range(repeats)]


def train_tokenizer(lines: Iterable[str], vocab_size: int):
    """Train on `lines`; returns a transformers fast tokenizer (bos added, pad = <pad>)."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS + BYTE_TOKENS),
                                  show_progress=False, min_frequency=2)
    tok.train_from_iterator(lines, trainer=trainer)
    # The trainer registers the byte tokens as *added* special tokens; Llama keeps them in the model vocabulary
    # only (so decoding with skip_special_tokens keeps bytes, and the text "<0x41>" is not one token).
    spec = json.loads(tok.to_str())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] in SPECIAL_TOKENS]
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")
