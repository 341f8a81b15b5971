"""The robustness regression gate: spec (`gate.spec`) -> measure -> compare with a baseline -> verdicts.

A *metric* (`gate.spec.metric_id`) is one error rate of one named target, pooled over its seeds.
Higher is worse. The baseline stores every metric's per-example correctness, so each comparison
is paired: the same examples, the same seed slots.

Verdict of a metric, with d = now − baseline (percentage points):
- `regression` when d > tolerance *and* the paired 95% interval of d lies entirely above 0,
- `improved` likewise in the other direction (a failure only with ``two_sided``: that is how an
  evaluation that silently became weaker shows up), otherwise `pass`.
The default tolerance is the 95% binomial interval of the difference of two independent error
rates on n examples (Newcombe's method, from Wilson intervals): the difference that two equally
good, independently trained models could show by chance; it shrinks like 1/sqrt(n). The paired
interval alone is far narrower: it says two models differ on these examples, which every retrained
model does (seed noise), so it alone would cry wolf. A spec may override the tolerance per metric
with an absolute number of percentage points; then the rule is just |d| > tolerance.

Library code: no printing, no argv; the CLI (`robustmix bench`) does the I/O at the edge.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..analysis.stats import paired_difference, wilson_ci
from ..data import load_dataset
from ..evaluation.evaluator import evaluate
from ..evaluation.records import error_rate
from ..runtime import files
from ..runtime.devices import processor, resolve_device
from ..runtime.errors import RobustmixError
from ..runtime.version import __version__
from ..soundness.verdicts import gate_verdict
from ..store.checkpoint import Checkpoint, load_checkpoint, provenance
from ..training.loop import train
from .spec import BenchSpec, metric_id
from .targets import ModelSpec

BASELINE_FORMAT = "robustmix-bench-baseline/1"


# ----------------------------------------------------------------------------- measuring
def measure(
    spec: BenchSpec,
    *,
    train_fn: Callable[..., tuple] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, str], dict]:
    """Train or load every model, evaluate. Returns ({metric id: correctness bit-string pooled over
    the target's seeds, in seed order}, {model slot: provenance}). `train_fn` is the trainer
    (injectable, so tests can plant a change in the training code)."""
    train_fn = train_fn or train  # looked up at call time, so a test can plant a change in it
    say = on_progress or (lambda text: None)
    device = resolve_device(spec.eval.device)
    data = load_dataset(spec.dataset)
    x, y = data.x_test, data.y_test
    if spec.examples is not None:
        if spec.examples > x.shape[0]:
            raise RobustmixError(f"spec asks for {spec.examples} examples but {spec.dataset} has {x.shape[0]} test examples: lower [data] examples")
        x, y = x[: spec.examples], y[: spec.examples]
    surrogate = obtain(spec.surrogate, spec, data, train_fn, say)[0] if spec.surrogate else None
    slots = {m.name: obtain(m, spec, data, train_fn, say) for m in spec.targets}
    targets = [c for cs in slots.values() for c in cs]
    records = evaluate(targets, x, y, spec.eval, surrogate=surrogate, device=device)
    say(f"evaluated {len(records)} records on {x.shape[0]} examples")
    used = ([surrogate] if surrogate else []) + targets
    return pooled_metrics(spec, records, slots), {c.name: provenance(c.meta) for c in used}


def obtain(m: ModelSpec, spec: BenchSpec, data, train_fn: Callable[..., tuple], say: Callable[[str], None]) -> list[Checkpoint]:
    """A model's checkpoints, one per seed slot ("name#i"): trained from its configs or loaded."""
    out = []
    for i, cfg in enumerate(m.configs):
        model, meta = train_fn(cfg, data=data)
        out.append(Checkpoint(f"{m.name}#{i}", model, meta))
        say(f"trained {m.name} (seed {cfg.seed}): clean top-1 error {meta['clean_top1_err']:.2f}%")
    for i, path in enumerate(m.checkpoints):
        model, meta = load_checkpoint(Path(spec.base) / path)
        if meta.get("dataset") != spec.dataset:
            raise RobustmixError(f"checkpoint {path} was trained on {meta.get('dataset')!r}, the spec evaluates {spec.dataset!r}: fix [data] or the checkpoint")
        out.append(Checkpoint(f"{m.name}#{i}", model, meta))
    return out


def pooled_metrics(spec: BenchSpec, records: list[dict], slots: dict[str, list[Checkpoint]]) -> dict[str, str]:
    """{metric id: the per-example correctness of the target's seed slots, concatenated in slot order}."""
    by_key = {(r["target"], r["setting"], r["attack"], r["eps_255"]): r for r in records}
    metrics: dict[str, str] = {}
    for r in records:
        name, _, slot = r["target"].rpartition("#")
        if slot != "0":
            continue
        for k in spec.topk:
            pooled = "".join(
                by_key[(c.name, r["setting"], r["attack"], r["eps_255"])][f"top{k}_correct"] for c in slots[name]
            )
            metrics[metric_id(name, r["setting"], r["attack"], r["eps_255"], k)] = pooled
    return {m: metrics[m] for m in spec.metric_ids()}


# ----------------------------------------------------------------------------- baseline I/O
def make_baseline(spec: BenchSpec, metrics: dict[str, str], provenance: dict, device: str) -> dict:
    return {
        "format": BASELINE_FORMAT,
        "robustmix_version": __version__,
        "torch_version": torch.__version__,
        "device": device,
        "processor": processor(device),
        "spec_hash": spec.hash,
        "spec": spec.canonical(),
        "models": provenance,
        "metrics": {
            m: {"err": error_rate(bits), "n": len(bits), "correct": bits} for m, bits in metrics.items()
        },
    }


def save_baseline(path: str | Path, baseline: dict) -> Path:
    return files.write_json(path, baseline)


def _diff_keys(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _diff_keys(x, y, f"{prefix}[{i}]")
        return out
    return [] if a == b else [prefix]


def load_baseline(path: str | Path, spec: BenchSpec) -> dict:
    """Read a baseline and check it was made from this spec; RobustmixError (exit 2) otherwise."""
    path = Path(path)
    fix = f"create it with: robustmix bench --spec SPEC --baseline {path} --update-baseline"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RobustmixError(f"baseline {str(path)!r} not found: {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RobustmixError(f"baseline {str(path)!r} unreadable ({e.__class__.__name__}): {fix}") from None
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT or not isinstance(doc.get("metrics"), dict):
        raise RobustmixError(f"{path} is not a {BASELINE_FORMAT} file: {fix}")
    if doc.get("spec_hash") != spec.hash:
        # through JSON, as the baseline stored it (tuples become lists), so only real changes are named
        changed = _diff_keys(doc.get("spec") or {}, json.loads(json.dumps(spec.canonical())))
        what = f" (differs in {', '.join(changed[:4])}{', …' if len(changed) > 4 else ''})" if changed else ""
        raise RobustmixError(
            f"baseline {path} was made from another spec{what}: a baseline only compares like with like; "
            "if the spec change is intended, rerun with --update-baseline"
        )
    for m, v in doc["metrics"].items():
        check_metric(m, v, f"baseline {path}", fix)
    return doc


def check_metric(metric: str, stored: dict, where: str, fix: str) -> None:
    """A baseline metric's per-example correctness, and its summary (n, err) agreeing with it: an
    edited or corrupt baseline is refused, not compared against."""
    if not isinstance(stored, dict) or not isinstance(stored.get("correct"), str) or set(stored["correct"]) - {"0", "1"}:
        raise RobustmixError(f"{where}: metric {metric} has no per-example correctness: {fix}")
    bits = stored["correct"]
    err, n = stored.get("err"), stored.get("n")
    says = error_rate(bits)
    if n != len(bits) or isinstance(err, bool) or not isinstance(err, (int, float)) or not math.isclose(err, says, abs_tol=1e-6):
        raise RobustmixError(
            f"{where}: metric {metric} states {err!r}% error on {n!r} examples but its per-example results give "
            f"{says:.4g}% on {len(bits)} (edited or corrupt): {fix}"
        )


# ----------------------------------------------------------------------------- comparing
@dataclass(frozen=True)
class Comparison:
    metric: str
    baseline: float  # error, %
    now: float
    diff: float  # now − baseline, percentage points
    lo: float  # paired 95% interval of diff
    hi: float
    p_value: float  # exact McNemar
    n: int
    tol_up: float  # how much worse (pp) is tolerated
    tol_down: float  # how much better (pp) is tolerated (two-sided)
    tolerance: str  # "binomial 95%" or "override"
    verdict: str  # pass | regression | improved

    def to_dict(self) -> dict:
        return asdict(self)


def newcombe_halfwidths(base_correct, now_correct, level: float = 0.95) -> tuple[float, float]:
    """(upper, lower) half-widths of Newcombe's hybrid-score interval of err_now − err_base for two
    independent samples (built from stats.wilson_ci). Written here because scipy has no interval of
    a difference of proportions; it stays sensible near 0% and 100% where the Wald one collapses."""
    pb, pn = error_rate(base_correct), error_rate(now_correct)
    lb, ub = wilson_ci(base_correct, level=level)
    ln, un = wilson_ci(now_correct, level=level)
    return math.hypot(un - pn, pb - lb), math.hypot(pn - ln, ub - pb)


def compare_one(metric: str, base_bits: str, now_bits: str, override: float | None) -> Comparison:
    if len(base_bits) != len(now_bits):
        raise RobustmixError(f"metric {metric}: baseline has {len(base_bits)} examples, now {len(now_bits)}: rerun with --update-baseline")
    pd_ = paired_difference(base_bits, now_bits)
    if override is None:
        up, down = newcombe_halfwidths(base_bits, now_bits)
        source = "binomial 95%"
    else:
        up = down = override
        source = "override"
    verdict = gate_verdict(pd_.diff, pd_.lo, pd_.hi, up, down, significant=override is None)
    return Comparison(
        metric, error_rate(base_bits), error_rate(now_bits), pd_.diff,
        pd_.lo, pd_.hi, pd_.p_value, pd_.n, up, down, source, verdict,
    )


def compare(spec: BenchSpec, baseline: dict, metrics: dict[str, str]) -> list[Comparison]:
    """One Comparison per metric; the metric sets must match (else RobustmixError)."""
    base = baseline["metrics"]
    if set(base) != set(metrics):
        missing = sorted(set(base) ^ set(metrics))
        raise RobustmixError(f"baseline and run measure different metrics ({', '.join(missing[:3])}): rerun with --update-baseline")
    return [compare_one(m, base[m]["correct"], bits, spec.tolerance_for(m)) for m, bits in metrics.items()]


def failures(comparisons: list[Comparison], *, two_sided: bool = False) -> list[Comparison]:
    bad = ("regression", "improved") if two_sided else ("regression",)
    return [c for c in comparisons if c.verdict in bad]


def exit_code(comparisons: list[Comparison], *, two_sided: bool = False) -> int:
    return 1 if failures(comparisons, two_sided=two_sided) else 0


# ----------------------------------------------------------------------------- reporting
def processor_note(baseline: dict, now: str) -> str | None:
    """A line for the summary when the baseline was made on another processor (None otherwise)."""
    then = baseline.get("processor")
    if then is None or then == now:
        return None
    return (
        f"Baseline made on {then}, this run on {now}: float kernels differ between processors, so the "
        "per-example results differ about as much as two training runs do; the tolerance allows for that."
    )


def render_summary(
    comparisons: list[Comparison], *, two_sided: bool = False, title: str = "Robustness gate", note: str | None = None
) -> str:
    """Markdown: one row per metric (error rates in %), then a one-line verdict (and `note`, if any)."""
    fails = failures(comparisons, two_sided=two_sided)
    lines = [
        f"### {title}: {'FAIL' if fails else 'pass'}",
        "",
        "| metric | baseline | now | difference (paired 95% CI) | tolerance | verdict |",
        "|---|---:|---:|---|---|---|",
    ]
    for c in comparisons:
        tol = f"+{c.tol_up:.1f}" + (f" / −{c.tol_down:.1f}" if two_sided else "") + f" ({c.tolerance})"
        verdict = c.verdict.upper() if c in fails else c.verdict
        lines.append(
            f"| `{c.metric}` | {c.baseline:.2f}% | {c.now:.2f}% | {c.diff:+.2f} pp [{c.lo:+.2f}, {c.hi:+.2f}] | {tol} | {verdict} |"
        )
    n = comparisons[0].n if comparisons else 0
    lines += ["", f"{len(comparisons)} metrics (error rates, lower is better) on {n} examples; "
              + (f"{len(fails)} failed: {', '.join(c.metric for c in fails)}." if fails else "no regression.")]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def result_json(spec: BenchSpec, comparisons: list[Comparison], *, two_sided: bool, device: str) -> dict:
    fails = failures(comparisons, two_sided=two_sided)
    return {
        "format": "robustmix-bench-result/1",
        "verdict": "fail" if fails else "pass",
        "exit_code": 1 if fails else 0,
        "failed": [c.metric for c in fails],
        "two_sided": two_sided,
        "spec_hash": spec.hash,
        "robustmix_version": __version__,
        "torch_version": torch.__version__,
        "device": device,
        "processor": processor(device),
        "metrics": [c.to_dict() for c in comparisons],
    }
