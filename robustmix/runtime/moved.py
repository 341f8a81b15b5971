"""Old module paths (robustmix 0.1's flat layout) kept working: `import robustmix.checkpoint` gives
`robustmix.store.checkpoint`, with a DeprecationWarning naming the new path.

The package's folders are its pipeline stages since 0.1's flat modules were sorted into them; code
written against the old paths (notebooks, scripts) keeps running. Each old name is an alias of the
new module (the same object), found lazily by a meta path finder, so nothing is imported early.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

MOVED = {  # old module -> new module
    "allocator": "runtime.allocator", "devices": "runtime.devices", "distributed": "runtime.distributed",
    "errors": "runtime.errors", "files": "runtime.files", "version": "runtime.version",
    "metrics": "models.predict", "programs": "models.programs", "inputs": "attacks.inputs",
    "checkpoint": "store.checkpoint", "legacy_state": "store.legacy", "runs": "store.runs", "results": "store.results",
    "config": "training.config", "recipes": "training.recipes", "train": "training.loop", "optim": "training.optim",
    "precision": "training.precision", "resume": "training.resume", "methods": "training.methods",
    "puzzlemix": "training.methods.puzzlemix", "graphcut": "training.methods.graphcut",
    "eval_config": "evaluation.config", "plan": "evaluation.plan", "evaluate": "evaluation.evaluator",
    "tally": "evaluation.tally", "transfer": "evaluation.transfer", "checks": "evaluation.guards",
    "soundness_probes": "evaluation.probes", "probes": "evaluation.probes",
    "verdicts": "soundness.verdicts", "stats": "analysis.stats", "replication": "analysis.replication",
    "curves": "analysis.curves", "report": "reporting.tables", "figures": "reporting.figures",
    "importer": "importing.sources", "import_checks": "importing.conventions", "imports": "importing.importer",
    "bench_spec": "gate.spec", "bench": "gate.gate", "study.run": "study.attacking", "cli.bench": "cli.gate",
}
# "soundness" and "analysis" were modules and are now the folders that hold them: `robustmix.soundness`
# and `robustmix.analysis` import as the packages (their faces re-export the old modules' main names).


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        return importlib.import_module(self.new)

    def exec_module(self, module):
        pass


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds `robustmix.<old>` for every old path in MOVED and hands back the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        old = fullname[len("robustmix."):] if fullname.startswith("robustmix.") else None
        if old not in MOVED:
            return None
        new = f"robustmix.{MOVED[old]}"
        warnings.warn(f"{fullname} moved to {new}: import it from there", DeprecationWarning, stacklevel=3)
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())


def alias_now(*olds: str) -> None:
    """Register old paths whose last name the package itself binds to a function (`robustmix.train`,
    `robustmix.evaluate`): found through sys.modules, they never overwrite that attribute."""
    for old in olds:
        sys.modules.setdefault(f"robustmix.{old}", importlib.import_module(f"robustmix.{MOVED[old]}"))
