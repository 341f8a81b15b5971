"""Training: one typed config in (`TrainConfig`), a checkpoint out.

    config.py     TrainConfig (frozen; CLI flags, config keys and metadata keys share one name)
    recipes.py    named sets of TrainConfig values (paper-cifar, fast-cifar, ...) and the automatic recipe
    loop.py       train(config) -> (model, metadata): the epoch loop, seeded, resumable, reproducible on CPU
    methods/      ERM, mixup, CutMix, Manifold Mixup, Puzzle Mix (registry.METHODS)
    optim.py      the fast recipe's decoupled SGD, lookahead weight averaging, label smoothing
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
