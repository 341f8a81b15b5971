"""The robustness gate's spec: a TOML file parsed and validated into a `BenchSpec`, its canonical
form and hash (what a baseline is bound to), and the metric ids it measures.

A *metric* is one error rate (top-1 or top-5, in percent) of one named target, pooled over that
target's seeds, either clean or under one (setting, attack, eps): e.g.
``mixup/black-box/ifgsm/32/top1``. Everything in the spec except [tolerance] is hashed. Every
mistake is a one-line `RobustmixError` naming the spec, the section, the problem and the fix.
The gate itself (measure, baseline, compare): `robustmix.gate.gate`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..attacks import ATTACKS, CLEAN, DEFAULT_ATTACKS, NO_ATTACK, SETTINGS, SUITE_SETTINGS, SUITES

from ..data import DATASETS
from ..data.sources import IMAGEFOLDER
from ..evaluation.evaluator import EvalConfig
from ..runtime.errors import RobustmixError
from .targets import MODEL_KEYS, TRAIN_KEYS, ModelSpec, bad, check_keys, surrogate_table, targets_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TOPK = (1, 5)
BUDGET_KEYS = ("pgd_iters", "pgd_restarts", "apgd_iters", "apgd_restarts", "square_queries", "seed")  # the strong attacks' EvalConfig fields
LATER_KEYS = ("target_classes", "fab_iters", "probe_examples", "nest_eps")  # keys added with APGD-T and FAB-T, nested eps (issue 36)
SECTIONS = {
    "data": ("dataset", "examples"),
    "train": TRAIN_KEYS,
    "targets": MODEL_KEYS,
    "surrogate": MODEL_KEYS,
    "attack": ("suite", "attacks", "eps", "iters", "settings", "topk", "batch_size", *BUDGET_KEYS, *LATER_KEYS, "square_on"),
    "tolerance": None,  # metric id or glob -> percentage points
}
# Sections only `robustmix study` reads (robustmix.study.spec): the gate refuses them rather than
# ignoring them silently.
STUDY_SECTIONS = ("strong", "figures", "claims", "cluster")


@dataclass(frozen=True)
class BenchSpec:
    dataset: str
    examples: int | None  # the first N test examples (None: all)
    targets: tuple[ModelSpec, ...]
    surrogate: ModelSpec | None
    eval: EvalConfig
    topk: tuple[int, ...]
    tolerances: tuple[tuple[str, float], ...] = field(default=())  # (metric id or glob, pp)
    base: str = "."  # the spec's folder: relative checkpoint paths start here (not hashed)

    def canonical(self) -> dict:
        """Everything that determines the measured numbers (not the tolerances), JSON-ready."""

        def model(m: ModelSpec | None):
            if m is None:
                return None
            out = {"name": m.name, "configs": [c.canonical() for c in m.configs], "checkpoints": list(m.checkpoints)}
            out = {**out, "settings": list(m.settings)} if m.settings else out  # a spec (and its hash) as before the key
            return {**out, "role": m.role} if m.role != "target" else out  # likewise

        ev = self.eval.to_dict()
        ev["eps_255"] = [round(e * 255, 6) for e in ev.pop("eps")]
        ev.pop("checks")  # the gate compares records; the soundness checks are not part of them
        if not any(ATTACKS[a].randomized for a in ev["attacks"] if a in ATTACKS):
            for k in BUDGET_KEYS:  # no strong attack: a spec (and its hash) as before they existed
                ev.pop(k)
        if ev["square_on"] == "all":  # the default: a spec (and its hash) as before the option existed
            ev.pop("square_on")
        defaults = EvalConfig()
        for k in EvalConfig.LATER:  # at the default: a spec (and its hash) as before these options existed
            if ev.get(k) == getattr(defaults, k):
                ev.pop(k)
        return {
            "data": {"dataset": self.dataset, "examples": self.examples},
            "targets": [model(m) for m in self.targets],
            "surrogate": model(self.surrogate),
            "attack": {**{k: list(v) if isinstance(v, tuple) else v for k, v in ev.items()}, "topk": list(self.topk)},
        }

    @property
    def hash(self) -> str:
        return spec_hash(self.canonical())

    def metric_ids(self) -> list[str]:
        """Every metric the spec measures, in the order the gate reports them."""
        cases = [(CLEAN, NO_ATTACK, 0.0)] + [
            (s, a, round(e * 255, 6)) for s in self.eval.settings for a in self.eval.attacks for e in self.eval.eps
        ]
        return [metric_id(t.name, *case, k) for t in self.targets for case in cases for k in self.topk]

    def tolerance_for(self, metric: str) -> float | None:
        """The override (pp) for a metric: an exact id first, else the first matching glob."""
        for pattern, pp in self.tolerances:
            if pattern == metric:
                return pp
        for pattern, pp in self.tolerances:
            if fnmatch.fnmatchcase(metric, pattern):
                return pp
        return None


def spec_hash(canonical: dict) -> str:
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def metric_id(target: str, setting: str, attack: str, eps_255: float, k: int) -> str:
    if setting == CLEAN:
        return f"{target}/clean/top{k}"
    return f"{target}/{setting}/{attack}/{eps_255:g}/top{k}"


def read_toml(text: str, source: str = "spec") -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise bad(source, f"not valid TOML ({e})", "fix the syntax") from None


def parse_spec(text: str | dict, *, base: Path = Path("."), source: str = "spec", study: bool = False) -> BenchSpec:
    """A BenchSpec from TOML text (or its parsed dict). `base` resolves relative checkpoint paths.
    With `study`, the study's own sections (STUDY_SECTIONS) are allowed (and left to the study to read)."""
    raw = read_toml(text, source) if isinstance(text, str) else dict(text)
    for key in STUDY_SECTIONS:
        if key in raw and not study:
            raise bad(source, f"[{key}] is a section of robustmix study, which the gate does not measure",
                       f"remove it, or run: robustmix study {source} --out DIR")
        raw.pop(key, None)
    check_keys(source, raw, SECTIONS)
    for key in ("data", "train", "attack", "tolerance"):
        if not isinstance(raw.get(key, {}), dict):
            raise bad(source, f"[{key}] is not a table", f"write it as a [{key}] section")
    dataset, examples = data_table(source, raw.get("data", {}))
    check_keys(f"{source} [train]", raw.get("train", {}), TRAIN_KEYS)
    # The gate runs on the CPU unless the spec says otherwise: CPU runs are deterministic.
    train_defaults = {"device": "cpu", **raw.get("train", {})}
    targets = targets_table(source, raw.get("targets"), train_defaults, dataset)
    for key, names in {k: [t.name for t in targets if getattr(t, k) not in ((), "target")] for k in ("settings", "role")}.items():
        if names and not study:  # study keys: a target's own settings, and the controls
            raise bad(source, f"target(s) {', '.join(names)} set {key}, a robustmix study key: the gate scores every target in [attack] "
                       "settings and has no controls", f"remove {key} from the [[targets]] table" + " or set [attack] settings" * (key == "settings"))
    ev, topk = attack_table(source, raw.get("attack", {}), train_defaults["device"])
    surrogate = surrogate_table(source, raw, train_defaults, dataset) if "black-box" in ev.settings else None
    spec = BenchSpec(dataset, examples, targets, surrogate, ev, topk, base=str(base))
    return replace(spec, tolerances=tolerance_table(source, raw.get("tolerance", {}), spec.metric_ids()))


def data_table(source: str, data: dict) -> tuple[str, int | None]:
    """[data]: (data set name, the first N test examples or None for all)."""
    check_keys(f"{source} [data]", data, SECTIONS["data"])
    dataset = data.get("dataset", "digits")
    if not isinstance(dataset, str) or (dataset not in DATASETS and not (dataset.startswith(IMAGEFOLDER) and len(dataset) > len(IMAGEFOLDER))):
        raise bad(f"{source} [data]", f"unknown data set {dataset!r}", f"choose one of {', '.join(sorted(DATASETS))} or imagefolder:ROOT")
    examples = data.get("examples")
    if examples is not None and (not isinstance(examples, int) or isinstance(examples, bool) or examples < 1):
        raise bad(f"{source} [data]", f"examples must be an integer >= 1, got {examples!r}", "or leave it out for the whole test set")
    return dataset, examples


def attack_table(source: str, attack: dict, device: str, section: str = "attack") -> tuple[EvalConfig, tuple[int, ...]]:
    """[attack] (or the study's [strong]): the EvalConfig (validated by itself; eps on the 0–255 scale) and the top-k list."""
    where = f"{source} [{section}]"
    check_keys(where, attack, SECTIONS["attack"])
    if "suite" in attack and attack["suite"] not in SUITES:
        raise bad(where, f"unknown suite {attack['suite']!r}", f"choose one of {', '.join(SUITES)}, or list attacks = [...]")
    if "suite" in attack and "attacks" in attack:
        raise bad(where, "has both suite and attacks", "give one of them")
    eps = attack.get("eps", [4])
    if not isinstance(eps, list) or not eps or not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in eps):
        raise bad(where, f"eps must be a list of numbers on the 0–255 scale, got {eps!r}", "e.g. eps = [16, 32]")
    if any(not (0 <= e <= 255) for e in eps):
        raise bad(where, f"eps {eps} leaves the 0–255 scale", "e.g. eps = [4] means 4/255")
    topk = tuple(attack.get("topk", [1]))
    if not topk or any(k not in TOPK for k in topk):
        raise bad(where, f"topk {list(topk)} is not a subset of {list(TOPK)}", "e.g. topk = [1, 5]")
    preset = {k: v for k, v in SUITE_SETTINGS.get(attack.get("suite", ""), {}).items() if k != "settings"}  # autoattack's budget
    suite_settings = SUITE_SETTINGS.get(attack.get("suite", ""), {}).get("settings", SETTINGS)
    try:
        ev = EvalConfig(
            eps=tuple(dict.fromkeys(e / 255 for e in eps)),
            attacks=tuple(attack.get("attacks", SUITES[attack["suite"]] if "suite" in attack else DEFAULT_ATTACKS)),
            iters=attack.get("iters", 10),
            settings=tuple(attack.get("settings", list(suite_settings))),
            batch_size=attack.get("batch_size", 500),
            device=device,
            **{**preset, **{k: attack[k] for k in (*BUDGET_KEYS, *LATER_KEYS, "square_on") if k in attack}},
        )
        ev.validate()
    except RobustmixError as e:
        raise bad(where, str(e), "fix the spec") from None
    except TypeError as e:
        raise bad(where, f"bad value ({e})", "attacks and settings are lists of names") from None
    return ev, topk


def tolerance_table(source: str, table: dict, ids: list[str]) -> tuple[tuple[str, float], ...]:
    """[tolerance]: (metric id or glob, percentage points) overrides, each matching some metric."""
    tolerances = []
    for pattern, pp in table.items():
        if isinstance(pp, bool) or not isinstance(pp, (int, float)) or not math.isfinite(pp) or pp < 0:
            raise bad(f"{source} [tolerance]", f"{pattern!r} = {pp!r} is not a number of percentage points >= 0", 'e.g. "mixup/white-box/fgsm/32/top1" = 10')
        if not any(fnmatch.fnmatchcase(m, pattern) for m in ids):
            raise bad(f"{source} [tolerance]", f"{pattern!r} matches no metric", f"metrics look like {ids[-1]} (globs allowed)")
        tolerances.append((pattern, float(pp)))
    return tuple(tolerances)


def read_spec(path: Path, fix: str) -> str:
    """The text of the spec file at `path`; a one-line error ending in `fix` when it is missing."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RobustmixError(f"spec {str(path)!r} not found: {fix}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RobustmixError(f"spec {str(path)!r} unreadable ({e.__class__.__name__}): pass a UTF-8 TOML file") from None


def load_spec(path: str | Path) -> BenchSpec:
    """The spec in the TOML file at `path` (its folder resolves relative checkpoint paths)."""
    path = Path(path)
    text = read_spec(path, "pass --spec PATH to a TOML file (see benchmarks/robustness.toml)")
    return parse_spec(text, base=path.parent, source=str(path))
