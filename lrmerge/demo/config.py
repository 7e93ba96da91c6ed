"""The knobs of the embedded demo world, and its two profiles (quick: tests and notebook smoke runs; demo: the study).

Everything the world contains is a deterministic function of one `WorldConfig` (seed included); its hash keys the
cache folder `runs/world/<config_key>/`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

Profile = Literal["quick", "demo"]
PROFILES: tuple[str, ...] = ("quick", "demo")
LANGUAGES: tuple[str, ...] = ("eng", "tbx", "mnx")  # English, the CLOSE language (Tibetan script), the FAR one (Mongolian)
X_LANGUAGES: tuple[str, ...] = ("tbx", "mnx")
FLORES_CODE = {"eng": "eng_Latn", "tbx": "tbx_Tibt", "mnx": "mnx_Mong"}


@dataclass(frozen=True)
class BaseModelConfig:
    """BASE: a tiny LlamaForCausalLM pre-trained on the English corpus (plus the tbx trace) on the CPU.

    hidden_size, num_layers, num_heads, intermediate_size: Llama shape (345K parameters in `demo`, 3/4 of them
        the 2000-row embeddings; one CPU thread trains it at about 10-19K tokens/s, measured on a loaded machine).
    seq_len: packed pre-training sequence length (and max_position_embeddings).
    batch_size: packed sequences per AdamW step; lr: peak learning rate (linear warm-up 5%, cosine decay).
        Batch 2 x 256 gives 1049 steps over the demo corpus in the time batch 16 takes for 131 (final loss 2.16 vs 2.79).
    epochs: passes over corpus/en_pretrain.txt.
    """

    hidden_size: int = 64
    num_layers: int = 3
    num_heads: int = 4
    intermediate_size: int = 192
    seq_len: int = 256
    batch_size: int = 2
    lr: float = 2e-3
    epochs: int = 1


@dataclass(frozen=True)
class WorldConfig:
    """Every knob of the world (the defaults are the `demo` profile).

    seed: everything (lexicon, corpora, tasks, BASE init and batch order) derives from it.
    languages: the X languages to build, a subset of ("tbx", "mnx"); English is always built.
    n_topics: topic categories, 7 as in SIB-200 (science/technology, travel, politics, sports, health,
        entertainment, geography); fewer uses the first n (SIB files still list the used labels).
    topic_nouns, topic_verbs: content words per topic (lexicon size; each X word is then seen hundreds of times).
    topic_purity: probability that a topical slot (subject, verb, object) of a sentence takes a word of the
        sentence's topic rather than a topic-neutral word (topic noise = 1 - topic_purity; one slot is always topical).
    collocation_strength: probability that a word takes its preferred partner (each topic verb its own subject and
        object nouns and place, each noun its adjective; `grammar.Collocations`) instead of a random one. Without
        partners the words of a topic are exchangeable and CT cannot align X words with their translations.
    loanword_share: share of each topic's content words borrowed unchanged (Latin script) into both X languages;
        the anchors that carry topic meaning. Eval items avoid loanwords when `anchor_free_eval`.
    anchor_free_eval: eval items use only enciphered (non-loan) content words, so X eval needs the X words.
    named_entities: person names copied unchanged into X (anchors without topic meaning).
    digits: sentences carry years / counts written in Arabic digits, copied unchanged into X.
    code_switch_rate: per-word probability that an X corpus sentence keeps the English word (X corpora only).
    parallel_share: share of X corpus lines that are an English sentence followed by its X translation.
    far_language_anchors: per-language overrides of the two knobs above, {lang: (parallel_share,
        code_switch_rate)}. The far language mnx gets more: with tbx's 0.15 / 0.05 the best of four TIES merges
        scored 18.1% on the mnx topic test (chance 14.3%); with 0.4 / 0.15, 34.7% (measured, seed 0, 504 items,
        on the earlier 4-layer, 192-wide BASE).
    ct_tokens: CT budget: size of corpus/<x>.txt in BASE-tokenizer tokens (replay is added by training); it
        must cover the recipe's largest `ct_x_tokens` (120K in `demo`) or CT repeats the corpus.
    replay_share: share of English replay in CT (0.25 as the paper); training consumes it, the world writes
        corpus/en_replay.txt big enough for it.
    en_pretrain_tokens: English pre-training corpus for BASE, in words (~tokens; the lexicon is all single tokens).
    base_trace_share: share of BASE's corpus lines that are tbx (the "small trace", as Llama-2 saw a little Tamil);
        mnx gets none, so it stays UTF-8 byte tokens.
    exercise_share: share of BASE's English documents that are matching exercises (`corpora.matching_exercise`:
        sentences, four lettered words, "It is B."), the reading skill grounded RC and RS build on. BASE itself
        does not learn the exercise (every held-out one answered with one letter: 23-27%, chance 25), but it
        learns the lettered-options format: SFT-flan (two passes) reached 88.2% / 94.1% on English SIB dev over
        BASEs with 0.2, against 49.0% / 51.0% with 0 (single runs, measured).
    tbx_spelling: "tibetan" (Tibetan letters, BASE tokens English never uses) or "english_words" (each tbx word is
        two English words in a row, so English SFT updates the embeddings that carry tbx: a design of issue #15's
        CT-budget study; `lexicon.TBX_SPELLINGS`).
    vocab_size: BPE vocabulary size, including the 256 <0xNN> byte-fallback tokens and 3 specials. 2000 makes
        every English and tbx word one token; at 900 tbx words fall apart into letters and the tbx retrieval
        probe drops from 47.7% to 7.5% (measured; `experiments/retrieval_vs_tokenization.py`).
    sft_items: English FLAN-style instances in sft/flan_en.jsonl (topic, reading, response selection, math;
        exact shares `sft.SFT_TASK_MIX`).
    choice_answer: how reading comprehension and response selection are answered in the SFT data and scored by
        log-likelihood (`prompts.choice_answer`): "letter_text" (" B. stone") or "letter" (" B", the benchmarks'
        way). With letters alone SFT-flan stayed at chance on English RC (25%) and RS (22-28%); with the option text
        after the letter it reached 84% and 100% (one seed each, `experiments/task_probe.py`).
    math_max_operand: math problems add two numbers in 1..math_max_operand (BASE's stories, SFT, eval).
    mt_translated_share: share of SFT instances translated into X in sft/flan_mt_<x>.jsonl (paper: half).
    The MT system of the -mt data (`grammar.NoisyTranslator`), as bad as NLLB was for these languages (paper section
    7.2, Table 14: hallucinated or omitted content, untranslated options, wrong-language words, repetitions).
    Every knob at 0 (and mt_translate_answer_cue True) is an exact word-by-word translation (source word order kept):
    mt_mistranslation_rate: share of the enciphered content words (topic nouns and verbs) that the system always
        renders as one fixed wrong X word (another content word, often of another topic): consistent errors.
    mt_hallucination_rate: share of translated instances to which one recurring invented X sentence is added
        (on the longest line: the passage or text), as NLLB repeats the same hallucination.
    mt_drop_rate: per-word probability that a translatable word is omitted.
    mt_repeat_rate: per-word probability that a word comes out three times (the repetition loops of Table 14).
    mt_untranslated_rate: per-word probability that a word stays English (wrong-language words).
    mt_untranslated_options_rate: share of translated multiple-choice instances whose option lines stay English.
    mt_translate_answer_cue: the cue word "answer" ("Answer:", "The answer is N.") is translated like any other
        word (True, what a real MT system does to the whole instance) or kept English as the template's.
    sizes: dev/test items per eval set (SIB test 504, so a gate has >= 500 items; the others cut for speed).
    base: BASE shape and pre-training schedule.
    """

    seed: int = 0
    languages: tuple[str, ...] = X_LANGUAGES
    n_topics: int = 7
    topic_nouns: int = 8
    topic_verbs: int = 4
    topic_purity: float = 0.85
    collocation_strength: float = 0.8
    loanword_share: float = 0.25
    anchor_free_eval: bool = True
    named_entities: bool = True
    digits: bool = True
    code_switch_rate: float = 0.05
    parallel_share: float = 0.15
    far_language_anchors: dict = field(default_factory=lambda: {"mnx": (0.4, 0.15)})
    ct_tokens: int = 130_000
    replay_share: float = 0.25
    en_pretrain_tokens: int = 500_000
    base_trace_share: float = 0.01
    exercise_share: float = 0.2
    tbx_spelling: str = "tibetan"
    vocab_size: int = 2000
    sft_items: int = 2000
    choice_answer: str = "letter_text"
    math_max_operand: int = 9
    mt_translated_share: float = 0.5
    mt_mistranslation_rate: float = 0.4
    mt_hallucination_rate: float = 0.5
    mt_drop_rate: float = 0.15
    mt_repeat_rate: float = 0.05
    mt_untranslated_rate: float = 0.1
    mt_untranslated_options_rate: float = 0.5
    mt_translate_answer_cue: bool = True
    sizes: dict = field(
        default_factory=lambda: {
            "sib200": (51, 504), "belebele": (48, 200), "mgsm": (30, 100),
            "mlic_tc": (20, 100), "mlic_mrc": (20, 100), "mlic_rs": (40, 200), "mlic_math": (20, 100),
        }
    )
    base: BaseModelConfig = field(default_factory=BaseModelConfig)

    def __post_init__(self) -> None:
        if isinstance(self.base, dict):  # from JSON (--set source_options, experiments' --world base={...})
            unknown = set(self.base) - {f.name for f in dataclasses.fields(BaseModelConfig)}
            if unknown:
                raise ValueError(f"WorldConfig.base: unknown field(s) {sorted(unknown)}; allowed: "
                                 f"{[f.name for f in dataclasses.fields(BaseModelConfig)]}")
            object.__setattr__(self, "base", BaseModelConfig(**self.base))
        for lang in self.languages:
            if lang not in X_LANGUAGES:
                raise ValueError(f"WorldConfig.languages: unknown language {lang!r}; allowed: {X_LANGUAGES}")
        if not 1 <= self.n_topics <= 7:
            raise ValueError(f"WorldConfig.n_topics must be in 1..7, got {self.n_topics}")
        for name in ("topic_nouns", "topic_verbs", "ct_tokens", "en_pretrain_tokens", "sft_items", "vocab_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WorldConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("topic_purity", "collocation_strength", "loanword_share", "code_switch_rate", "parallel_share", "replay_share",
                     "base_trace_share", "exercise_share", "mt_translated_share", "mt_mistranslation_rate", "mt_hallucination_rate",
                     "mt_drop_rate", "mt_repeat_rate", "mt_untranslated_rate", "mt_untranslated_options_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"WorldConfig.{name} must be in [0, 1], got {value}")
        for lang, shares in self.far_language_anchors.items():
            if lang not in X_LANGUAGES or len(shares) != 2 or not all(0.0 <= v <= 1.0 for v in shares):
                raise ValueError(f"WorldConfig.far_language_anchors[{lang!r}] must map an X language {X_LANGUAGES} to "
                                 f"(parallel_share, code_switch_rate) in [0, 1], got {shares!r}")
        if self.choice_answer not in ("letter", "letter_text"):
            raise ValueError(f"WorldConfig.choice_answer must be 'letter' or 'letter_text', got {self.choice_answer!r}")
        if not 1 <= self.math_max_operand <= 99:
            raise ValueError(f"WorldConfig.math_max_operand must be in 1..99, got {self.math_max_operand}")
        if self.tbx_spelling not in ("tibetan", "english_words"):
            raise ValueError(f"WorldConfig.tbx_spelling must be 'tibetan' or 'english_words', got {self.tbx_spelling!r}")
        if self.vocab_size < 600:
            raise ValueError(f"WorldConfig.vocab_size must be >= 600 (256 byte tokens + the lexicon), got {self.vocab_size}")
        if set(self.sizes) != set(SIZE_KEYS):
            raise ValueError(f"WorldConfig.sizes must give (dev, test) for exactly {SIZE_KEYS}, got {tuple(self.sizes)}")
        for task, split_sizes in self.sizes.items():
            if task not in SIZE_KEYS:
                raise ValueError(f"WorldConfig.sizes: unknown task {task!r}; allowed: {SIZE_KEYS}")
            if len(split_sizes) != 2 or min(split_sizes) < 1:
                raise ValueError(f"WorldConfig.sizes[{task!r}] must be (dev, test) with both >= 1, got {split_sizes}")

    def anchors(self, lang: str) -> tuple[float, float]:
        """(parallel_share, code_switch_rate) of lang's CT corpus."""
        return tuple(self.far_language_anchors.get(lang, (self.parallel_share, self.code_switch_rate)))

    def mt_noise(self):
        """The MT knobs as a `grammar.MTNoise`."""
        from lrmerge.demo.grammar import MTNoise

        return MTNoise(self.mt_mistranslation_rate, self.mt_hallucination_rate, self.mt_drop_rate, self.mt_repeat_rate,
                       self.mt_untranslated_rate, self.mt_untranslated_options_rate, self.mt_translate_answer_cue)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SIZE_KEYS = ("sib200", "belebele", "mgsm", "mlic_tc", "mlic_mrc", "mlic_rs", "mlic_math")


def profile_config(profile: Profile = "demo", seed: int = 0, **overrides) -> WorldConfig:
    """`demo`: the study's world (BASE a few CPU minutes). `quick`: tiny, whole build under a minute."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {PROFILES}")
    if profile == "quick":
        quick = dict(
            ct_tokens=40_000, en_pretrain_tokens=60_000, sft_items=300, vocab_size=1200, base_trace_share=0.03,
            sizes={"sib200": (20, 60), "belebele": (12, 40), "mgsm": (10, 30), "mlic_tc": (12, 60),
                   "mlic_mrc": (8, 30), "mlic_rs": (10, 40), "mlic_math": (8, 30)},
            base=BaseModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, seq_len=128,
                                 batch_size=16, lr=3e-3, epochs=1),
        )
        quick.update(overrides)
        return WorldConfig(seed=seed, **quick)
    return WorldConfig(seed=seed, **overrides)
