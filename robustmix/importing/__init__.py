"""Importing a model trained elsewhere: read it safely, check its conventions, wrap it so it takes
[0, 1] pixels, and keep it as a robustmix checkpoint.

    sources.py      SOURCE strings (torchvision:, timm:, robustmix:, a program file), state dicts,
                    the normalisation and class order it is given
    conventions.py  the import checks: forward pass, normalisation and class order, diagnosed on data
    importer.py     ImportConfig, import_source, save_imported, import_model

How an imported checkpoint is rebuilt when loaded: `robustmix.models.foreign`.

May import: runtime, data, models, store.
"""

from .importer import ImportConfig, import_model, import_source, save_imported

__all__ = ["ImportConfig", "import_model", "import_source", "save_imported"]
