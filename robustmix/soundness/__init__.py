"""Soundness: is an evaluation strong enough to believe, and what does it let us conclude?

    checks.py    the eight checks over records and probe records (pass, warn, fail, skip)
    verdicts.py  every verdict, in one place: the paired-test sentence (about checkpoints), verdicts
                 that obey the checks, the worst case and the ceiling, a claim's rule (reproduced / not
                 reproduced / inconclusive / not testable: one-sided margins, minimum seeds, Holm), a
                 study's controls (does each read as its role says? else every claim is not valid)

May import: runtime, attacks, evaluation.
"""

from .checks import CHECKS, Check, Margins, soundness_checks
from .verdicts import paired_verdict, sound_verdicts

__all__ = ["CHECKS", "Check", "Margins", "paired_verdict", "sound_verdicts", "soundness_checks"]
