"""`robustmix study`: train what a spec lists (reusing and resuming checkpoints), attack with the
paper and the strong suites, probe, and write a report folder with the claims C1–C12 judged with
the training seed as the unit of replication.

    spec.py     the study spec: the gate's TOML (robustmix.bench_spec) plus [strong], [figures], [claims]
    training.py the models: reuse, resume or train each, one at a time or in parallel processes
    run.py      the attack stage, reusing what is on disk (no weights needed)
    probing.py  the probes stage: Figure 2 and calibration, one file per model
    schedule.py a whole study model by model (train, attack, probe each before the next), the
                weights a run needs, and the dry run
    claims.py   C1–C12 by the verdict rule of docs/protocol.md
    tables.py   pooled (seed-level) and per-seed tables, models, checks, claims as frames
    render.py   blocks -> README.md and a self-contained report.html
    report.py   the report folder and study.json
"""

from .claims import Claim, judge_claims
from .report import build_report
from .probing import probes_stage
from .run import attack_stage
from .schedule import dry_run, needs_weights, run_models
from .training import models_of, status_of, train_stage
from .spec import StudySpec, load_study, parse_study

__all__ = ["Claim", "StudySpec", "attack_stage", "build_report", "dry_run", "judge_claims", "load_study", "models_of",
           "needs_weights", "parse_study", "probes_stage", "run_models", "status_of", "train_stage"]
