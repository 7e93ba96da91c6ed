"""Per-language configuration of the study as plain data (paper Tables 1 and 2, section 4, footnotes 2, 4-6).

One `LanguageConfig` per language: the seven low-resource languages of the paper, English (SFT data and
replay), and the two languages of the embedded demo world (tbx: Tibetan script, the "close" language whose
script BASE has seen a trace of; mnx: traditional Mongolian script, the "far" one BASE never saw).
Benchmark codes differ per benchmark (FLORES codes for SIB-200/Belebele, ISO 639-1 for MGSM and MLiC-Eval);
`benchmark_code` maps a project code to the code a loader expects.
"""

from __future__ import annotations

from dataclasses import dataclass

BENCHMARKS = ("sib200", "belebele", "mgsm", "mlic_tc", "mlic_mrc", "mlic_rs", "mlic_math")
MLIC_TASKS = ("mlic_tc", "mlic_mrc", "mlic_rs", "mlic_math")
DEMO_EVAL_SOURCE = "{world}/eval"  # the demo world writes <world>/eval/{sib200,belebele,mgsm,mlic}/...
HUB_SOURCES = {  # benchmark -> hub dataset id (the paper's evaluation data)
    "sib200": "Davlan/sib200",
    "belebele": "facebook/belebele",
    "mgsm": "juletxara/mgsm",
    **{task: "pkupie/milic-eval" for task in MLIC_TASKS},
}


@dataclass(frozen=True)
class CTCorpus:
    """The monolingual corpus of continual pre-training (Table 2). Token counts use Llama-2's tokenizer."""

    name: str  # as in the paper: CulturaX, IndicCorp-v2, MC^2
    hub_id: str | None  # None: the demo world's own corpus
    subset: str | None  # hub config / language subset
    text_field: str
    size_tokens: int | None  # Table 2 "Tokens"
    ct_tokens: int | None  # tokens used for CT (section 4, footnote 6); None = the whole corpus
    reference: str = ""

    @property
    def tokens_used(self) -> int | None:
        return self.size_tokens if self.ct_tokens is None else self.ct_tokens


@dataclass(frozen=True)
class LanguageConfig:
    code: str  # the project's language code (ISO 639-3 as in the paper; mvf = traditional-script Mongolian)
    name: str
    family: str
    script: str
    flores_code: str | None  # SIB-200 / Belebele config; None where FLORES-200 lacks the language
    in_llama2_vocab: bool  # whether Llama-2's vocabulary has tokens for the script (section 4)
    ct_corpus: CTCorpus | None
    tasks: tuple[str, ...]  # evaluation benchmarks (Table 2)
    task_sources: dict[str, str]  # benchmark -> hub id or local template ("{world}/eval")
    mgsm_code: str | None = None
    mlic_code: str | None = None  # MLiC-Eval language folder: bo, ug, mn
    nllb_code: str | None = None  # NLLB-200 target of the -mt SFT data (footnote 2 / section 4)
    nllb_transliterate: str | None = None  # post-MT script conversion, where NLLB lacks the script
    population: str | None = None  # Table 1
    is_demo: bool = False

    def __post_init__(self) -> None:
        for task in self.tasks:
            if task not in BENCHMARKS:
                raise ValueError(f"language {self.code}: unknown task {task!r}; allowed: {', '.join(BENCHMARKS)}")
            if task not in self.task_sources:
                raise ValueError(f"language {self.code}: task {task} has no entry in task_sources")
            if self.benchmark_code(task) is None:
                raise ValueError(f"language {self.code}: task {task} needs a benchmark code")

    def benchmark_code(self, benchmark: str) -> str | None:
        """The code the `benchmark`'s loader expects for this language (FLORES, MGSM or MLiC-Eval code)."""
        if benchmark in ("sib200", "belebele"):
            return self.flores_code
        if benchmark == "mgsm":
            return self.mgsm_code
        if benchmark in MLIC_TASKS:
            return self.mlic_code
        raise ValueError(f"unknown benchmark {benchmark!r}; allowed: {', '.join(BENCHMARKS)}")

    def task_source(self, benchmark: str, world: str | None = None) -> str:
        """Where the benchmark's data lives for this language; demo sources need the world folder."""
        if benchmark not in self.task_sources:
            raise ValueError(f"language {self.code} is not evaluated on {benchmark!r}; its tasks: {', '.join(self.tasks)}")
        source = self.task_sources[benchmark]
        if "{world}" in source:
            if world is None:
                raise ValueError(f"language {self.code}: the {benchmark} source {source!r} needs world=<demo world folder>")
            source = source.format(world=world)
        return source


def _hub(tasks: tuple[str, ...]) -> dict[str, str]:
    return {task: HUB_SOURCES[task] for task in tasks}


def _demo(tasks: tuple[str, ...]) -> dict[str, str]:
    return {task: DEMO_EVAL_SOURCE for task in tasks}


INDIC_TASKS = ("sib200", "belebele")
INDIC_MATH_TASKS = ("sib200", "belebele", "mgsm")
DEMO_TASKS = ("sib200", "belebele", "mgsm", "mlic_rs")
CULTURAX = dict(name="CulturaX", hub_id="uonlp/CulturaX", text_field="text", reference="Nguyen et al., 2024")
MC2 = dict(name="MC^2", hub_id="pkupie/mc2_corpus", text_field="text", reference="Zhang et al., 2024b")
B, M = 1_000_000_000, 1_000_000

LANGUAGES: dict[str, LanguageConfig] = {
    config.code: config
    for config in (
        LanguageConfig("tam", "Tamil", "Dravidian", "Tamil", "tam_Taml", True,
                       CTCorpus(subset="ta", size_tokens=int(15.9 * B), ct_tokens=8 * B, **CULTURAX),
                       INDIC_TASKS, _hub(INDIC_TASKS), nllb_code="tam_Taml", population="79M"),
        LanguageConfig("tel", "Telugu", "Dravidian", "Telugu", "tel_Telu", True,
                       CTCorpus(subset="te", size_tokens=int(12.4 * B), ct_tokens=8 * B, **CULTURAX),
                       INDIC_MATH_TASKS, _hub(INDIC_MATH_TASKS), mgsm_code="te", nllb_code="tel_Telu", population="96M"),
        LanguageConfig("ory", "Odia", "Indo-European", "Odia", "ory_Orya", False,
                       CTCorpus(subset="or", size_tokens=765 * M, ct_tokens=None, **CULTURAX),
                       INDIC_TASKS, _hub(INDIC_TASKS), nllb_code="ory_Orya", population="35M"),
        LanguageConfig("ben", "Bengali", "Indo-European", "Bengali", "ben_Beng", True,
                       CTCorpus("IndicCorp-v2", "ai4bharat/IndicCorpV2", "bn", "text", int(36.4 * B), 16 * B,
                                "Doddapaneni et al., 2023"),
                       INDIC_MATH_TASKS, _hub(INDIC_MATH_TASKS), mgsm_code="bn", nllb_code="ben_Beng", population="240M"),
        LanguageConfig("bod", "Tibetan", "Sino-Tibetan", "Tibetan", "bod_Tibt", True,
                       CTCorpus(subset="bo", size_tokens=1000 * M, ct_tokens=None, **MC2),
                       MLIC_TASKS, _hub(MLIC_TASKS), mlic_code="bo", nllb_code="bod_Tibt", population="7M"),
        LanguageConfig("uig", "Uyghur", "Turkic", "Arabic", "uig_Arab", True,
                       CTCorpus(subset="ug", size_tokens=412 * M, ct_tokens=None, **MC2),
                       MLIC_TASKS, _hub(MLIC_TASKS), mlic_code="ug", nllb_code="uig_Arab", population="12M"),
        # Traditional-script Mongolian: not in FLORES-200 (khk_Cyrl is Cyrillic Halh), not in NLLB. The -mt data is
        # translated to Cyrillic Mongolian and transliterated (paper footnote 5: tugstugi/mongolian-nlp bichig2cyrillic).
        LanguageConfig("mvf", "Mongolian", "Mongolic", "Mongolian", None, False,
                       CTCorpus(subset="mn", size_tokens=904 * M, ct_tokens=None, **MC2),
                       MLIC_TASKS, _hub(MLIC_TASKS), mlic_code="mn", nllb_code="khk_Cyrl",
                       nllb_transliterate="cyrillic->traditional (tugstugi/mongolian-nlp)", population="6M"),
        # English: the SFT data (FLAN + GSM8K) and the replay language (RedPajama); not a CT target.
        LanguageConfig("eng", "English", "Indo-European", "Latin", "eng_Latn", True, None,
                       INDIC_MATH_TASKS, _hub(INDIC_MATH_TASKS), mgsm_code="en", nllb_code="eng_Latn"),
        # The demo world (lrmerge.demo): its own corpora and eval sets under <world>/; scripts mirror bod and mvf.
        LanguageConfig("tbx", "Demo Tibetan-script language", "demo", "Tibetan", "tbx_Tibt", True,
                       CTCorpus("demo world", None, "tbx", "text", None, None, "lrmerge.demo"),
                       DEMO_TASKS, _demo(DEMO_TASKS), mgsm_code="tbx", mlic_code="tbx", is_demo=True),
        LanguageConfig("mnx", "Demo Mongolian-script language", "demo", "Mongolian", "mnx_Mong", False,
                       CTCorpus("demo world", None, "mnx", "text", None, None, "lrmerge.demo"),
                       DEMO_TASKS, _demo(DEMO_TASKS), mgsm_code="mnx", mlic_code="mnx", is_demo=True),
    )
}

PAPER_LANGUAGES = ("tam", "tel", "ory", "ben", "bod", "uig", "mvf")

# Unicode blocks of each script (letters of a language's text should mostly fall in its script's blocks).
SCRIPT_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "Latin": ((0x0041, 0x005A), (0x0061, 0x007A), (0x00C0, 0x024F)),
    "Tamil": ((0x0B80, 0x0BFF),),
    "Telugu": ((0x0C00, 0x0C7F),),
    "Odia": ((0x0B00, 0x0B7F),),
    "Bengali": ((0x0980, 0x09FF),),
    "Tibetan": ((0x0F00, 0x0FFF),),
    "Arabic": ((0x0600, 0x06FF), (0x0750, 0x077F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
    "Mongolian": ((0x1800, 0x18AF),),
}


def script_share(text: str, script: str) -> float:
    """Share of the letters of ``text`` (Unicode category L*/M*) that lie in ``script``'s blocks; 0 without letters."""
    import unicodedata

    if script not in SCRIPT_RANGES:
        raise ValueError(f"unknown script {script!r}; known: {', '.join(SCRIPT_RANGES)}")
    ranges = SCRIPT_RANGES[script]
    letters = [ord(c) for c in text if unicodedata.category(c)[0] in "LM"]
    if not letters:
        return 0.0
    return sum(any(lo <= c <= hi for lo, hi in ranges) for c in letters) / len(letters)
DEMO_LANGUAGES = ("tbx", "mnx")


def get_language(code: str) -> LanguageConfig:
    """The configuration of one language; unknown codes raise ValueError listing the known ones."""
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}; known: {', '.join(LANGUAGES)}")
    return LANGUAGES[code]


def benchmark_codes(benchmark: str, lang: str) -> tuple[str, ...]:
    """Codes to try, in order, for `lang` on `benchmark`'s loader: a project code maps to the benchmark's own code
    (tam -> tam_Taml for SIB-200, ben -> bn for MGSM, mvf -> mn for MLiC-Eval), then the project code itself (the
    demo world names its MGSM / MLiC folders eng, tbx, mnx); any other string is taken as the benchmark's code."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; allowed: {', '.join(BENCHMARKS)}")
    if lang not in LANGUAGES:
        return (lang,)
    code = LANGUAGES[lang].benchmark_code(benchmark)
    return (lang,) if code in (None, lang) else (code, lang)
