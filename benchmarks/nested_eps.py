"""The strong suite at several eps: looped, stacked and nested, side by side in one run.

What `robustmix attack --suite strong --settings white-box --eps 16,24,32` does three ways, on the
quickstart's digits targets (or any checkpoints: --targets, their own data set, a stratified subset
with --examples), the three alternated round by round (the CPU may be shared: the median of the
rounds is what to quote):

- looped   `--no-stack-eps`: one eps after the other, every attack in full at each;
- stacked  the default: every eps in one batch (per-example eps, step sizes, random starts);
- nested   `--nest-eps`: the eps in increasing order, each strong attack with passes of its own
           (PGD, APGD-CE, APGD-DLR, APGD-T, Square) attacking a larger eps only on the examples it
           left at the smaller one (docs/protocol.md#nested-eps).

Per run: wall seconds, and the rows every model call saw (a forward pre-hook counts them: rows in
passes that are differentiated count as forward+backward), divided by the examples, i.e. passes
per example; the plan's bounds for the nested run (`robustmix attack --dry-run`); and the checks
that the nested worst case (top-1) is never weaker than the others' per example, and that the
stacked run's records equal the looped run's.

    robustmix quickstart --runs runs          # the checkpoints (once)
    python benchmarks/nested_eps.py --runs runs --eps 16,24,32 --rounds 3 --threads 1
    python benchmarks/nested_eps.py --targets CIFAR_CHECKPOINT --eps 2,4,8 --examples 100 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from robustmix.attacks import SUITES, WORST
from robustmix.cli.common import eps_list
from robustmix.evaluation.evaluator import EvalConfig, evaluate, plan_evaluation
from robustmix.evaluation.plan import total_cost
from robustmix.evaluation.records import as_bool
from robustmix.runtime.devices import processor
from robustmix.store.runs import evaluation_examples, find_targets, load_data_of, open_checkpoints

MODES = ("looped", "stacked", "nested")


def count_rows(models) -> tuple[dict, list]:
    """Counters of the rows every forward call of `models` gets, split into passes that will be
    differentiated (forward+backward) and forward-only ones, and the hook handles."""
    seen = {"fwd": 0, "bwd": 0}

    def hook(module, inputs):
        seen["fwd"] += inputs[0].shape[0]
        seen["bwd"] += inputs[0].shape[0] if torch.is_grad_enabled() and inputs[0].requires_grad else 0

    return seen, [m.register_forward_pre_hook(hook) for m in models]


def config_of(mode: str, base: EvalConfig) -> EvalConfig:
    return {"looped": replace(base, stack_eps=False), "stacked": base, "nested": replace(base, nest_eps=True)}[mode]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("runs"), help="the folder `robustmix quickstart` wrote (its targets are attacked)")
    p.add_argument("--eps", type=eps_list, default=(16 / 255, 24 / 255, 32 / 255), help="0–255 scale (default 16,24,32)")
    p.add_argument("--targets", type=Path, nargs="+", default=None, help="checkpoint folders to attack instead of --runs' targets")
    p.add_argument("--examples", type=int, default=None, help="a stratified subset of N test examples, seed 0 (default all)")
    p.add_argument("--rounds", type=int, default=3, help="alternated rounds of looped, stacked, nested (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    p.add_argument("--no-checks", action="store_true", help="leave the soundness checks' PGD probes out")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    targets = open_checkpoints(args.targets or find_targets(args.runs), torch.device("cpu"))
    data = load_data_of(targets[0].meta)
    x, y = evaluation_examples(data, args.examples)
    n = x.shape[0]
    base = EvalConfig(eps=args.eps, attacks=SUITES["strong"], settings=("white-box",), square_on="survivors", device="cpu",
                      checks=not args.no_checks)
    seen, hooks = count_rows([t.model for t in targets])
    load = os.getloadavg()[0]
    print(f"processor: {processor('cpu')}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch thread(s); torch {torch.__version__}")
    name = data.name if not data.name.startswith("imagefolder:") else f"the image folder {Path(data.name.split(':', 1)[1]).name}"
    print(f"{len(targets)} target(s) ({', '.join(t.name for t in targets)}), {n} test examples of {name}, eps {', '.join(f'{e * 255:g}' for e in args.eps)}/255; strong suite, "
          f"white-box, default budget, Square on survivors, checks {'off' if args.no_checks else 'on (their PGD probes included)'}")
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    passes: dict[str, tuple[float, float]] = {}
    records: dict[str, list[dict]] = {}
    for r in range(args.rounds):
        for mode in MODES:
            seen["fwd"] = seen["bwd"] = 0
            start = time.perf_counter()
            got = evaluate(targets, x, y, config_of(mode, base), probes=[])
            walls[mode].append(time.perf_counter() - start)
            passes[mode] = (seen["fwd"] / n, seen["bwd"] / n)
            records.setdefault(mode, got)
            assert got == records[mode], f"{mode}: round {r + 1} gave other records than round 1 (same seed)"
            worst = {(q["target"][-16:], q["eps_255"]): q["top1_err"] for q in got if q["attack"] == WORST}
            print(f"round {r + 1} {mode:8}: {walls[mode][-1]:7.1f} s; passes per example {passes[mode][0]:7.0f} forward "
                  f"(of them {passes[mode][1]:6.0f} with backward); worst-case top-1 % "
                  + ", ".join(f"{t}@{e:g} {v:.2f}" for (t, e), v in worst.items()), flush=True)
    for h in hooks:
        h.remove()
    plan, _ = plan_evaluation([t.name for t in targets], None, config_of("nested", base), 500)
    most = total_cost(plan)
    least = tuple(a - b for a, b in zip(most, total_cost([q for q in plan if q.kind == "craft" and q.nest and q.after is not None])))

    def key(q):
        return (q["target"], q["setting"], q["attack"], q["eps_255"])

    same = {key(q): q["top1_correct"] for q in records["looped"]} == {key(q): q["top1_correct"] for q in records["stacked"]}
    stronger = True
    for q in records["nested"]:
        if q["attack"] == WORST:
            other = next(o for o in records["looped"] if key(o) == key(q))
            stronger &= bool(((~as_bool(q["top1_correct"])) >= (~as_bool(other["top1_correct"]))).all())
    med = {m: statistics.median(w) for m, w in walls.items()}
    print(f"\nmedian wall of {args.rounds} interleaved round(s): " + ", ".join(f"{m} {med[m]:.1f} s" for m in MODES))
    print(f"nested vs looped: {med['looped'] / med['nested']:.2f}× faster; nested vs stacked: {med['stacked'] / med['nested']:.2f}× faster; "
          f"stacked vs looped: {med['looped'] / med['stacked']:.2f}×")
    print("passes per example (forward, of them with backward): " + ", ".join(f"{m} {passes[m][0]:.0f}, {passes[m][1]:.0f}" for m in MODES)
          + f"; the nested run's plan for these targets, at most: {most[0]}, {most[1]} (no example fooled at the smallest eps), "
            f"{least[0]}, {least[1]} (every one fooled there); it counts every restart, target and query, and leaves out the "
            "once-per-run model check (2 × 64 forward rows per target)")
    print(f"stacked records equal the looped ones (top-1, every record): {same}; nested worst case ⊇ looped worst case per example "
          f"(top-1): {stronger}; load average before / after: {load:.2f} / {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
