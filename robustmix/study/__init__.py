"""`robustmix study`: train what a spec lists (reusing and resuming checkpoints), attack with the
paper and the strong suites, probe, and write a report folder with the claims C1–C12 judged with
the training seed as the unit of replication.

    spec.py       the study spec: the gate's TOML (robustmix.gate.spec) plus [strong], [figures], [claims], [cluster]
    training.py   the train stage: reuse, resume or train each model, one at a time or in parallel processes
    attacking.py  the attack stage, reusing what is on disk (no weights needed)
    probing.py    the probes stage: Figure 2 and calibration, one file per model
    schedule.py   a whole study model by model (train, attack, probe each before the next), the
                  weights a run needs, and the dry run
    cluster.py    submitit's executors (local processes, Slurm job arrays) with the [cluster] resources
    jobs.py       each model as a job of its own (--executor local|slurm): the job, its requeue, the driver
    claims.py     C1–C12 judged by the verdict rule (robustmix.soundness.verdicts; docs/protocol.md):
                  not tested / not testable / too few seeds / Holm across the rows left; the controls
                  read first (a positive or negative control that misreads: every claim not valid)
    headline.py   the report's first lines (the claims table in words, the ceiling, the tally), the data set
                  named without its path, torch per checkpoint, what the recipes add to the paper's ERM
    tables.py     pooled (seed-level) and per-seed tables, models, checks, claims as frames
    render.py     the report's blocks answer first: the verdict panel, the claims, the checks' grid, the
                  sections of docs/protocol.md the page carries (rendered by robustmix.reporting.blocks/page)
    report.py     the report stage: the report folder and study.json

May import: runtime, data, models, attacks, store, training, evaluation, soundness, analysis, reporting, gate.
"""

from .attacking import attack_stage
from .claims import Claim, judge_claims
from .probing import probes_stage
from .report import build_report
from .schedule import dry_run, needs_weights, run_models
from .spec import StudySpec, load_study, parse_study
from .training import models_of, status_of, train_stage

__all__ = ["Claim", "StudySpec", "attack_stage", "build_report", "dry_run", "judge_claims", "load_study", "models_of",
           "needs_weights", "parse_study", "probes_stage", "run_models", "status_of", "train_stage"]
