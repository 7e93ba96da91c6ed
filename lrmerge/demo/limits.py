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
        "the crossover needs merging ahead at the scarce end first (see the scarce-data finding); with more CT, "
        "CT-then-SFT does lead on the demo world, in mnx (English SFT transfers little into byte-spelled text) by "
        "less than two standard errors over three seeds."
    ),
    "mt": (
        "a verdict needs the difference above two standard errors in every language, and with three seeds one seed "
        "whose order flips (per-seed scores: tables/seeds.csv) keeps a language below that even when its mean "
        "difference is large. mnx is spelled in UTF-8 byte tokens and far from English: English SFT transfers little "
        "into it, while the -mt data at least shows the model mnx prompts, so there the noisy translator has to be bad "
        "enough to lose that."
    ),
}
