"""Soundness: is an evaluation strong enough to believe, and what does it let us conclude?

    checks.py    the eight checks over records and probe records (pass, warn, fail, skip)
    verdicts.py  every verdict, in one place: the paired-test sentence, verdicts that obey the
                 checks and the worst case, a claim's rule (reproduced / not reproduced / ...)

May import: runtime, attacks, evaluation.
"""

from .checks import CHECKS, Check, Margins, soundness_checks
from .verdicts import paired_verdict, sound_verdicts

__all__ = ["CHECKS", "Check", "Margins", "paired_verdict", "sound_verdicts", "soundness_checks"]
