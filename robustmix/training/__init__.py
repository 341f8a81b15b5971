"""Training: one typed config in (`TrainConfig`), a checkpoint out.

    config.py     TrainConfig (frozen; CLI flags, config keys and metadata keys share one name)
    recipes.py    named sets of TrainConfig values (paper-cifar, fast-cifar, ...) and the automatic recipe
    build.py      what a run builds before its first step: data, precision, network, optimiser and lr schedule
    loop.py       train(config) -> (model, metadata): the epoch loop, seeded, resumable, reproducible on CPU
    methods/      ERM, mixup, CutMix, Manifold Mixup, Puzzle Mix (registry.METHODS)
    adversarial.py  adversarial training, an option of every method: PGD-AT, FGSM-RS, TRADES, and how each
                  composes with the mixing methods (IAT, or crafting on the mixed input)
    guard.py      fast adversarial training's catastrophic-overfitting guard (held-out PGD accuracy, roll back)
    optim.py      the fast recipe's decoupled SGD, lookahead and EMA weight averaging, label smoothing
    precision.py  bfloat16 autocast and channels_last, and where "auto" turns each on
    resume.py     the per-epoch resume state (one safetensors file)
    meta.py       what a trained model's meta.json records
    save.py       train_and_save: overwrite policy, resume, log.csv, the checkpoint folder

May import: runtime, data, models, attacks, store.
"""

from .config import TrainConfig
from .loop import train
from .recipes import RECIPES, resolve_config
from .save import train_and_save

__all__ = ["RECIPES", "TrainConfig", "resolve_config", "train", "train_and_save"]
