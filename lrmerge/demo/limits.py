"""What the demo world is known not to show, and why (measured; experiments/DESIGNS.md): printed by the paper stage
under each finding of `tables/findings.md` that a demo run does not reproduce."""

from __future__ import annotations

FINDING_EXPLANATIONS: dict[str, str] = {
    "scarce": (
        "in every design measured on the demo world (experiments/DESIGNS.md: light SFT, X replay during SFT or none, "
        "tbx spelled in English words, TIES densities from a dev grid) merging does not beat CT-then-SFT at the "
        "scarcest budget by two standard errors. With X replay during SFT, CT-then-SFT does not forget X, and the "
        "replayed X text (6.7K token passes) is half the scarcest CT budget (12K X tokens); without it CT-then-SFT does forget "
        "(held-out tbx perplexity 29 -> 873 at 12K X tokens), but at that budget CT has not aligned X's words with "
        "English ones, so the merge has nothing to transfer the tasks through either."
    ),
    "crossover": (
        "the crossover needs merging ahead at the scarce end first (see the scarce-data finding). With more CT, "
        "CT-then-SFT leads in tbx; in mnx (English SFT transfers little into byte-spelled text, every model within "
        "a few points of chance) the two stay within about two standard errors of each other, and which one leads "
        "changes with the CPU the study runs on (experiments/DESIGNS.md, session 6)."
    ),
    "mt": (
        "a verdict needs the difference above two standard errors in every language. tbx shows it. mnx is spelled "
        "in UTF-8 byte tokens and far from English: English SFT transfers little into it (CTSFT-mnx-flan a few "
        "points above chance), so the order of CTSFT-mnx-flan and CTSFT-mnx-mt rests on small differences that "
        "move with the CPU's floating-point kernels: the same commit and seeds gave mnx +3.91 ± 1.03 on one CPU and "
        "-1.91 ± 0.71 on an AMD EPYC with AVX2 kernels (experiments/DESIGNS.md, session 6). The seeds' standard "
        "error does not cover that: all seeds share one BASE, and the CPU changes the BASE. On the AVX2 CPU a second "
        "world (`lrmerge study --world-seed 1`) gave mnx -3.25 ± 1.58 too: where English SFT barely reaches, the "
        "translated half of the -mt data, mnx text the model reads after CT, can help more than its errors hurt "
        "(session 7). Where the mnx difference comes from (session 8, seeds 0/1/2 of the study's recipe): on the "
        "multiple-choice tasks CTSFT-mnx-flan is the higher one; the -mt lead is math, and it is not arithmetic. "
        "CTSFT-mnx-flan gives no number to 100, 100 and 85 of the 100 mnx math questions (seed 0 ends 96 answers "
        "at once; the paper's CTSFT-mvf-flan leaves 74 of 200 unparsable, section 8.1); CTSFT-mnx-mt answers "
        "one number to 91, 55 and 63 of them, which scores what a constant guess does (the line on one number for "
        "every question above)."
    ),
}
