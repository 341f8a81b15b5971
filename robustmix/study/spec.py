"""The study spec: a `robustmix bench` spec (`robustmix.gate.spec`, one language) with three
optional sections of its own, each validated here with one-line errors naming the fix:

- [strong]  the strong suite: `suite = "strong"` or `attacks = [...]`, `eps` (0–255 scale),
            `examples` (a stratified, seeded subset of the test set), `seed` (the subset's and the
            attacks' random starts), the budget keys of [attack] (pgd_iters, pgd_restarts,
            apgd_iters, apgd_restarts, square_queries), `square_on` ("all" or "survivors": Square
            only on the examples no gradient attack fooled, white-box), `settings`, `iters`,
            `batch_size`, `topk`;
- [figures] Figure 2 (`pairs`, `lams` points on [0, 1], `distinct_labels`, `seed`) and the
            calibration bins (`bins`);
- [claims]  `eps` (0–255) at which Table 3 and the claims are read (default 4), `margin` (pp) of the
            "no meaningful difference" claims (C2, C9's PGD part, C11's first part), `broken` (%):
            the error both models must reach for C2, and `lam`, the λ at which C6/C7 compare.

`load_study(path, dataset=None)` returns a StudySpec; `dataset` overrides [data] dataset (e.g.
imagefolder:/where/cifar10 is), so a committed spec does not hard-wire a machine's paths.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..attacks import SUITES
from ..evaluation.evaluator import EvalConfig
from ..gate.spec import (
    BenchSpec,
    _attack,
    _bad,
    _check_keys,
    parse_spec,
    read_spec,
    read_toml,
)

STRONG_KEYS = ("suite", "attacks", "eps", "examples", "seed", "iters", "settings", "topk", "batch_size",
               "pgd_iters", "pgd_restarts", "apgd_iters", "apgd_restarts", "square_queries", "square_on", "target_classes", "fab_iters",
               "probe_examples")


@dataclass(frozen=True)
class FiguresSpec:
    pairs: int = 1000
    lams: int = 21
    distinct_labels: bool = True
    seed: int = 0
    bins: int = 10


@dataclass(frozen=True)
class ClaimsSpec:
    eps: float = 4.0  # 0–255 scale
    margin: float = 2.0  # percentage points
    broken: float = 90.0  # % error both models reach for C2
    lam: float = 0.5


@dataclass(frozen=True)
class StudySpec:
    bench: BenchSpec
    strong: EvalConfig | None = None
    strong_examples: int | None = None
    strong_topk: tuple[int, ...] = (1,)
    figures: FiguresSpec = field(default_factory=FiguresSpec)
    claims: ClaimsSpec = field(default_factory=ClaimsSpec)
    source: str = "spec"

    def canonical(self) -> dict:
        """Everything that determines the study's numbers, JSON-ready."""
        strong = None
        if self.strong is not None:
            ev = self.strong.to_dict()
            ev["eps_255"] = [round(e * 255, 6) for e in ev.pop("eps")]
            strong = {**ev, "examples": self.strong_examples, "topk": list(self.strong_topk)}
        return {**self.bench.canonical(), "strong": strong, "figures": asdict(self.figures), "claims": asdict(self.claims)}

    def settings_of(self, target: str) -> tuple[str, ...]:
        """The settings a target is limited to ([[targets]] settings = [...]); () = every suite's own."""
        return next((t.settings for t in self.bench.targets if t.name == target), ())

    def with_device(self, device: str) -> "StudySpec":
        """Every model's config and both suites on `device` (not part of what a checkpoint must match)."""
        def models(m):
            return None if m is None else replace(m, configs=tuple(c.with_(device=device) for c in m.configs))

        bench = replace(self.bench, targets=tuple(models(t) for t in self.bench.targets), surrogate=models(self.bench.surrogate),
                        eval=replace(self.bench.eval, device=device))
        return replace(self, bench=bench, strong=replace(self.strong, device=device) if self.strong else None)


def _int(where: str, table: dict, key: str, default: int, low: int = 1) -> int:
    v = table.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise _bad(where, f"{key} must be an integer >= {low}, got {v!r}", f"e.g. {key} = {default}")
    return v


def _number(where: str, table: dict, key: str, default: float, low: float, high: float) -> float:
    v = table.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
        raise _bad(where, f"{key} must be a number in [{low:g}, {high:g}], got {v!r}", f"e.g. {key} = {default:g}")
    return float(v)


def _strong(source: str, table: dict, device: str, n_paper: int | None) -> tuple[EvalConfig, int | None, tuple[int, ...]]:
    where = f"{source} [strong]"
    _check_keys(where, table, STRONG_KEYS)
    table = dict(table)
    if "attacks" not in table:
        table["suite"] = table.get("suite", "strong")
    if "suite" in table and table["suite"] not in SUITES:
        raise _bad(where, f"unknown suite {table['suite']!r}", f"choose one of {', '.join(SUITES)}, or list attacks = [...]")
    examples = table.pop("examples", None)
    if examples is not None:
        examples = _int(where, {"examples": examples}, "examples", 1000)
    ev, topk = _attack(source, table, device, "strong")
    return ev, examples, topk


def parse_study(text: str, *, base: Path = Path("."), source: str = "spec", dataset: str | None = None) -> StudySpec:
    raw = read_toml(text, source)
    if dataset is not None:
        raw.setdefault("data", {})
        if not isinstance(raw["data"], dict):
            raise _bad(source, "[data] is not a table", "write it as a [data] section")
        raw["data"] = {**raw["data"], "dataset": dataset}
    bench = parse_spec(raw, base=base, source=source, study=True)
    for key in ("strong", "figures", "claims"):
        if not isinstance(raw.get(key, {}), dict):
            raise _bad(source, f"[{key}] is not a table", f"write it as a [{key}] section")
    strong = strong_examples = None
    strong_topk: tuple[int, ...] = (1,)
    if "strong" in raw:
        strong, strong_examples, strong_topk = _strong(source, raw["strong"], bench.eval.device, bench.examples)
    fig = raw.get("figures", {})
    _check_keys(f"{source} [figures]", fig, tuple(FiguresSpec.__dataclass_fields__))
    where = f"{source} [figures]"
    distinct = fig.get("distinct_labels", True)
    if not isinstance(distinct, bool):
        raise _bad(where, f"distinct_labels must be true or false, got {distinct!r}", "e.g. distinct_labels = true")
    figures = FiguresSpec(_int(where, fig, "pairs", 1000), _int(where, fig, "lams", 21, 2), distinct,
                          _int(where, fig, "seed", 0, 0), _int(where, fig, "bins", 10))
    cl = raw.get("claims", {})
    where = f"{source} [claims]"
    _check_keys(where, cl, tuple(ClaimsSpec.__dataclass_fields__))
    claims = ClaimsSpec(_number(where, cl, "eps", 4, 0, 255), _number(where, cl, "margin", 2, 0, 100),
                        _number(where, cl, "broken", 90, 0, 100), _number(where, cl, "lam", 0.5, 0, 1))
    if not any(abs(e * 255 - claims.eps) < 1e-6 for e in bench.eval.eps):
        raise _bad(where, f"eps {claims.eps:g} is not among [attack] eps {[round(e * 255, 6) for e in bench.eval.eps]}",
                   "read the claims at an eps the paper suite runs")
    if not bench.targets or any(m.checkpoints for m in (*bench.targets, bench.surrogate) if m is not None):
        raise _bad(source, "a study trains its models (checkpoints = [...] is for the gate)", "give method and seeds instead")
    return StudySpec(bench, strong, strong_examples, strong_topk, figures, claims, source)


def load_study(path: str | Path, *, dataset: str | None = None) -> StudySpec:
    """The study spec in the TOML file at `path`; `dataset` overrides its [data] dataset."""
    path = Path(path)
    text = read_spec(path, "pass a TOML file (see benchmarks/study-digits.toml)")
    return parse_study(text, base=path.parent, source=str(path), dataset=dataset)
