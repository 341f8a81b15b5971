"""Analysis: statistics of records, never running a model.

    stats.py        intervals (bootstrap, Wilson) and the paired test (exact McNemar) of one comparison
    comparisons.py  per-example frames, error rates with intervals, paired tests between targets (Holm)
    replication.py  intervals with the training seed as the unit of replication
    curves.py       training curves from the checkpoints' per-epoch logs
    minimal.py      minimal-perturbation records (eps* per example): the error at any eps, median eps*

May import: runtime, data, models, attacks, store, training, evaluation, soundness.
"""

from .comparisons import (
           error_intervals,
           error_rates,
           holm,
           method_label,
           paired_comparisons,
           per_example_frame,
)
from .replication import SeedInterval, difference_interval, error_interval
from .stats import bootstrap_ci, paired_difference, wilson_ci

__all__ = ["SeedInterval", "bootstrap_ci", "difference_interval", "error_interval", "error_intervals", "error_rates", "holm", "method_label",
           "paired_comparisons", "paired_difference", "per_example_frame", "wilson_ci"]
