"""robustmix: does a training method (ERM, mixup and its relatives) make an image classifier
more robust to adversarial examples? Train, attack and report, with evidence.

Pixels are floats in [0, 1] everywhere; in this Python API eps is in [0, 1] units
(the paper's eps = 4 on the 0–255 scale is 4/255 here).

The folders are the pipeline, in the order data flows (each imports only the folders its
docstring names, all of them earlier in this list; tests/test_structure.py checks it):

    runtime/     plumbing: errors, version, devices, distributed, malloc, atomic writes
    data/        data sets as whole tensors, pixels in [0, 1]
    models/      networks (normalisation inside), predictions, networks brought from elsewhere
    attacks/     L∞ attacks as pure functions (model, x, y, *, eps, ...) -> x_adv
    store/       checkpoint folders, runs folders, result files
    training/    TrainConfig, recipes, the loop, the methods (mixup, CutMix, ...), train_and_save
    evaluation/  EvalConfig, the planner, evaluate -> records, transfer, the probes
    soundness/   the soundness checks and every verdict
    analysis/    statistics of records: intervals, paired tests, seed-level replication, curves
    reporting/   Table 3, evidence, figures
    importing/   a model trained elsewhere, checked and kept as a checkpoint
    gate/        the robustness regression gate for CI (`robustmix bench`)
    study/       spec -> trained, attacked, probed, judged, reported
    cli/         the command line (the only part that reads argv or prints)

Attacks sit below training and store below it too: training crafts adversarial examples and saves
checkpoints. Importing needs only the store and the models, but is a way into the pipeline like
the CLI, so it is listed with the entry points.
"""

from .evaluation.config import EvalConfig
from .evaluation.evaluator import evaluate
from .importing.importer import import_model
from .runtime import moved as _moved
from .runtime.version import __version__
from .store.checkpoint import load_checkpoint, save_checkpoint
from .training.config import TrainConfig
from .training.loop import train

_moved.install()
_moved.alias_now("train", "evaluate")

__all__ = ["__version__", "EvalConfig", "TrainConfig", "evaluate", "import_model", "load_checkpoint", "save_checkpoint", "train"]
