"""robustmix: does a training method (ERM, mixup and its relatives) make an image classifier
more robust to adversarial examples? Train, attack and report, with evidence.

Pixels are floats in [0, 1] everywhere; in this Python API eps is in [0, 1] units
(the paper's eps = 4 on the 0–255 scale is 4/255 here).
"""

from .version import __version__  # noqa: E402
from .checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from .config import TrainConfig  # noqa: E402
from .imports import import_model  # noqa: E402
from .train import train  # noqa: E402

__all__ = ["__version__", "TrainConfig", "import_model", "load_checkpoint", "save_checkpoint", "train"]
