"""Machine translation of SFT data for CTSFT-X-mt (section 3.2, footnote 2; section 4).

The paper translates FLAN + GSM8K with NLLB-200-distilled-1.3B and, "to enhance the model's ability to follow English
prompts", translates a random half of the instances (prompt and response) while the other half stays English.
NLLB has no traditional Mongolian: translate to Cyrillic Mongolian (khk_Cyrl) and transliterate (a post-step).

Anything with ``translate(texts, src, tgt) -> list[str]`` is a ``Translator``: the NLLB-style ``Seq2SeqTranslator``
below for real runs, the demo world's own imperfect translator for the CPU study.
"""

from __future__ import annotations

import random
from typing import Callable, Protocol, Sequence, runtime_checkable

NLLB_MODEL = "facebook/nllb-200-distilled-1.3B"
# study language -> NLLB code; mvf goes through Cyrillic Mongolian and needs a transliteration post-step
NLLB_CODES = {
    "eng": "eng_Latn", "tam": "tam_Taml", "tel": "tel_Telu", "ory": "ory_Orya", "ben": "ben_Beng",
    "bod": "bod_Tibt", "uig": "uig_Arab", "mvf": "khk_Cyrl",
}
NEEDS_POST_STEP = {"mvf": "a Cyrillic -> traditional Mongolian transliteration callable (paper footnote 5)"}


@runtime_checkable
class Translator(Protocol):
    def translate(self, texts: list[str], src: str, tgt: str) -> list[str]:
        """One output per input, same order; ``src``/``tgt`` are study language codes (eng, tam, ...)."""
        ...


def make_mt_variant(records: Sequence[dict], translator: Translator, lang: str, fraction: float = 0.5,
                    seed: int = 0, src: str = "eng") -> list[dict]:
    """Copy of ``records`` in which round(fraction * n) instances, chosen by ``seed``, have prompt and response
    translated into ``lang`` (marked ``lang`` = lang, ``translated`` = True); the rest stay as they were."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    chosen = sorted(random.Random(seed).sample(range(len(records)), round(fraction * len(records))))
    texts = [records[i][key] for i in chosen for key in ("prompt", "response")]
    translated = translator.translate(texts, src, lang) if texts else []
    if len(translated) != len(texts):
        raise ValueError(f"translator returned {len(translated)} texts for {len(texts)} inputs")
    out = [{**r, "translated": False} for r in records]
    for k, i in enumerate(chosen):
        out[i] = {**records[i], "prompt": translated[2 * k], "response": translated[2 * k + 1], "lang": lang,
                  "translated": True}
    return out


class Seq2SeqTranslator:
    """A ``transformers`` seq2seq MT model (NLLB/M2M100 style) behind the ``Translator`` protocol.

    Batched (texts sorted by length so batches pad little; outputs returned in input order), source language set on
    the tokenizer (``src_lang``) and target forced as the first generated token (``forced_bos_token_id``).
    ``post_steps`` maps a study language to a callable applied to each output (mvf: Cyrillic -> traditional script).
    """

    def __init__(self, model, tokenizer, codes: dict[str, str] | None = None, batch_size: int = 16,
                 max_new_tokens: int = 256, post_steps: dict[str, Callable[[str], str]] | None = None,
                 num_beams: int = 1):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.codes = dict(NLLB_CODES if codes is None else codes)
        self.batch_size, self.max_new_tokens, self.num_beams = batch_size, max_new_tokens, num_beams
        self.post_steps = dict(post_steps or {})

    @classmethod
    def from_pretrained(cls, name: str = NLLB_MODEL, device: str | None = None, transliterate_mvf=None, **kwargs):
        """Load NLLB (real runs). ``transliterate_mvf``: Cyrillic -> traditional Mongolian callable for mvf."""
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        model = AutoModelForSeq2SeqLM.from_pretrained(name, dtype=dtype).to(device)
        post = {"mvf": transliterate_mvf} if transliterate_mvf is not None else {}
        return cls(model, AutoTokenizer.from_pretrained(name), post_steps=post, **kwargs)

    def _code(self, lang: str) -> str:
        if lang not in self.codes:
            raise ValueError(f"no MT language code for {lang!r}; known: {sorted(self.codes)}")
        return self.codes[lang]

    def translate(self, texts: list[str], src: str, tgt: str) -> list[str]:
        import torch

        src_code, tgt_code = self._code(src), self._code(tgt)
        tgt_id = self.tokenizer.convert_tokens_to_ids(tgt_code)
        if tgt_id is None or tgt_id == self.tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no language token {tgt_code!r} (target {tgt!r})")
        if hasattr(self.tokenizer, "src_lang"):
            self.tokenizer.src_lang = src_code
        post = self.post_steps.get(tgt)
        if post is None and tgt in NEEDS_POST_STEP:
            raise ValueError(f"target {tgt!r} needs post_steps[{tgt!r}]: {NEEDS_POST_STEP[tgt]}")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        outputs: list[str | None] = [None] * len(texts)
        device = next(self.model.parameters()).device
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True)
            with torch.no_grad():
                generated = self.model.generate(**batch.to(device), forced_bos_token_id=tgt_id,
                                                max_new_tokens=self.max_new_tokens, num_beams=self.num_beams)
            decoded = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
            for i, text in zip(idx, decoded):
                outputs[i] = post(text) if post is not None else text
        return outputs  # type: ignore[return-value]
