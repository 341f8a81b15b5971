"""AutoAttack parity: robustmix's `--suite autoattack` (the standard cascade: APGD-CE 100, APGD-T 9
targets × 100, FAB-T 9 × 100, Square 5,000 queries, each on the examples the ones before it left)
against AutoAttack's own code and torchattacks' AutoAttack, on one checkpoint, per example, with
each attack's time and its forward+backward floor.

    python benchmarks/autoattack_parity.py CHECKPOINT --data digits --eps 32 [--examples N] [--json out.json]

The references, each run on the same examples in the same order:
- AutoAttack's own code: `pyautoattack` (fra31/auto-attack's attack modules, packaged; see
  tests/test_autoattack_agreement.py for how it was checked), its standard version, seed 0, the
  cascade written out as its `run_standard_evaluation` does it (each attack object called on the
  examples still robust), so that each attack can be timed;
- torchattacks' AutoAttack(version="standard"): as shipped, its APGD, APGD-T and FAB keep
  torchattacks' default of 10 steps (not the paper's 100, torchattacks issue #196), so it does less
  work and is expected to be weaker; its time is the one the issue's target compares with.
The floor of an attack: the forward and forward+backward passes it actually made (counted per row
by a wrapper around the model), priced at the time of one bare pass per row measured on the same
batch; robustmix's ratio = floor / its time (1.0: no overhead at all).

Prints a Markdown table (robust accuracy per attack, cumulative, and per example: of the examples a
reference fools, the share robustmix fools) and the times; --json writes every number.
State the processor with any time you quote.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robustmix.attacks import apgd_sweep, apgd_targeted_sweep, fab_targeted_sweep, square_sweep
from robustmix.attacks.budget import APGD_ITERS, FAB_ITERS, SQUARE_QUERIES, TARGETS
from robustmix.data import load_dataset, pixels, stratified_subset
from robustmix.runtime.devices import processor
from robustmix.store.checkpoint import load_checkpoint

ORDER = ("apgd-ce", "apgd-t", "fab-t", "square")


class Counted(nn.Module):
    """The model, counting the rows it sees: with gradient (a forward+backward) or without."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.grad_rows, self.plain_rows = model, 0, 0

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            self.grad_rows += x.shape[0]
        else:
            self.plain_rows += x.shape[0]
        return self.model(x)


def per_row_times(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeat: int = 20) -> tuple[float, float]:
    """(seconds per row of a bare forward, of a bare forward+backward w.r.t. the input), on batch x."""
    with torch.no_grad():
        model(x)
        t0 = time.perf_counter()
        for _ in range(repeat):
            model(x)
        fwd = (time.perf_counter() - t0) / repeat / x.shape[0]
    t0 = time.perf_counter()
    for _ in range(repeat):
        xa = x.detach().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(xa), y, reduction="sum"), xa)
    fb = (time.perf_counter() - t0) / repeat / x.shape[0]
    return fwd, fb


def wrong(model, x_adv, x, y, eps) -> torch.Tensor:
    with torch.no_grad():
        w = model(x_adv).argmax(1) != y
    return w & ((x_adv - x).flatten(1).abs().amax(1) <= eps + 1e-6)


def cascade(name: str, attacks: dict, model: Counted, x, y, eps) -> dict:
    """Run attacks in ORDER, each on the examples still robust; per attack: fooled (cumulative), time, passes."""
    with torch.no_grad():
        robust = model.model(x).argmax(1) == y
    out = {"clean": robust.clone()}
    times, passes = {}, {}
    for a in ORDER:
        model.grad_rows = model.plain_rows = 0
        t0 = time.perf_counter()
        idx = robust.nonzero().view(-1)
        if idx.numel():
            adv = attacks[a](x, y, robust)
            robust &= ~wrong(model.model, adv, x, y, eps)
        times[a] = time.perf_counter() - t0
        passes[a] = (model.plain_rows, model.grad_rows)
        out[a] = robust.clone()
        print(f"{name}: {a} done in {times[a]:.0f} s, {int(robust.sum())} of {len(y)} still robust", file=sys.stderr, flush=True)
    return {"name": name, "robust": out, "times": times, "passes": passes}


def robustmix_attacks(model, eps, seed=0):
    e = (eps,)

    def only(robust):
        return robust.view(1, -1)

    return {
        "apgd-ce": lambda x, y, r: apgd_sweep(model, x, y, eps=e, loss="ce", iters=APGD_ITERS, seed=seed, only=only(r))[eps],
        "apgd-t": lambda x, y, r: apgd_targeted_sweep(model, x, y, eps=e, iters=APGD_ITERS, target_classes=TARGETS, seed=seed,
                                                      only=only(r))[eps],
        "fab-t": lambda x, y, r: fab_targeted_sweep(model, x, y, eps=e, iters=FAB_ITERS, target_classes=TARGETS, only=only(r))[eps],
        "square": lambda x, y, r: square_sweep(model, x, y, eps=e, queries=SQUARE_QUERIES, seed=seed, only=only(r), rescale=False)[eps],
    }


def on_subset(fn):
    """A reference attack run on the robust examples only (as AutoAttack's loop does), scattered back."""
    def run(x, y, robust):
        idx = robust.nonzero().view(-1)
        adv = x.clone()
        adv[idx] = fn(x[idx], y[idx])
        return adv

    return run


def autoattack_attacks(model, eps, seed=0):
    from pyautoattack import AutoAttack

    aa = AutoAttack(model, eps=eps, norm="Linf", version="standard", seed=seed, device="cpu")
    aa.fab.targeted, aa.fab.n_restarts = True, 1

    def apgd_ce(x, y):
        aa.apgd.loss, aa.apgd.seed = "ce", aa.get_seed()
        return aa.apgd.perturb(x, y)

    return {"apgd-ce": on_subset(apgd_ce), "apgd-t": on_subset(lambda x, y: aa.apgd_targeted.perturb(x, y)),
            "fab-t": on_subset(lambda x, y: aa.fab.perturb(x, y)), "square": on_subset(lambda x, y: aa.square.perturb(x, y))}


def torchattacks_autoattack(model, x, y, eps, classes, seed=0, steps: int | None = None) -> tuple[torch.Tensor, float]:
    """torchattacks' AutoAttack(version="standard") as shipped, or (steps) the same cascade built from
    its parts as its AutoAttack builds it, with APGD, APGD-T and FAB at `steps` (the paper's 100)."""
    import torchattacks

    if steps is None:
        attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=classes, seed=seed)
    else:
        common = dict(eps=eps, norm="Linf", seed=seed, n_restarts=1)
        attack = torchattacks.MultiAttack([
            torchattacks.APGD(model, loss="ce", steps=steps, **common),
            torchattacks.APGDT(model, n_classes=classes, steps=steps, **common),
            torchattacks.FAB(model, multi_targeted=True, n_classes=classes, steps=steps, **common),
            torchattacks.Square(model, n_queries=5000, **common),
        ])
    t0 = time.perf_counter()
    adv = attack(x, y)
    return adv, time.perf_counter() - t0


def bits(mask: torch.Tensor) -> str:
    return "".join("1" if b else "0" for b in mask.tolist())


def part_doc(runs: list[dict], fwd: float, fb: float) -> dict:
    """One run's per-example robust bits after each attack, times and passes: what --combine adds up."""
    return {"fwd_s_per_row": fwd, "fb_s_per_row": fb, "processor": processor(torch.device("cpu")),
            "threads": torch.get_num_threads(),
            **{key: {"robust": {a: bits(r["robust"][a]) for a in ("clean", *ORDER)}, "times": r["times"],
                     "passes": {a: list(v) for a, v in r["passes"].items()}} for key, r in zip(("robustmix", "autoattack"), runs)}}


def combine(parts: list[dict]) -> dict:
    """Parts (each a part_doc) as one: bits concatenated, times and passes summed, each part's floor priced
    at its own per-row times."""
    out = {}
    for key in ("robustmix", "autoattack"):
        out[key] = {"robust": {a: torch.tensor([c == "1" for p in parts for c in p[key]["robust"][a]]) for a in ("clean", *ORDER)},
                    "times": {a: sum(p[key]["times"][a] for p in parts) for a in ORDER},
                    "passes": {a: [sum(p[key]["passes"][a][i] for p in parts) for i in (0, 1)] for a in ORDER},
                    "floor": {a: sum(p[key]["passes"][a][0] * p["fwd_s_per_row"] + p[key]["passes"][a][1] * p["fb_s_per_row"]
                                     for p in parts) for a in ORDER}}
    return out


def table(title: str, merged: dict, ta: dict | None = None) -> tuple[list[str], dict]:
    """The Markdown table and summary lines of a (combined) run, and its numbers as JSON."""
    ours, ref = merged["robustmix"]["robust"], merged["autoattack"]["robust"]
    n = len(ours["clean"])
    lines = [title, "",
             "| After | robustmix robust acc. (%) | AutoAttack robust acc. (%) | robustmix s | AutoAttack s | robustmix floor s | floor / robustmix |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    doc = {"n": n, "attacks": {}}
    for a in ("clean", *ORDER):
        row = {"robustmix": 100 * ours[a].float().mean().item(), "autoattack": 100 * ref[a].float().mean().item()}
        if a == "clean":
            lines.append(f"| clean | {row['robustmix']:.2f} | {row['autoattack']:.2f} | | | | |")
        else:
            floor = merged["robustmix"]["floor"][a]
            row.update(seconds=merged["robustmix"]["times"][a], ref_seconds=merged["autoattack"]["times"][a], floor_s=floor,
                       passes=merged["robustmix"]["passes"][a], ref_passes=merged["autoattack"]["passes"][a])
            lines.append(f"| + {a} | {row['robustmix']:.2f} | {row['autoattack']:.2f} | {row['seconds']:.1f} | {row['ref_seconds']:.1f} | "
                         f"{floor:.1f} | {floor / max(row['seconds'], 1e-9):.2f} |")
        doc["attacks"][a] = row
    fooled_ref, fooled_ours = ~ref["square"], ~ours["square"]
    share = 100.0 * (fooled_ref & fooled_ours).sum().item() / max(1, fooled_ref.sum().item())
    doc.update(only_reference=int((fooled_ref & ~fooled_ours).sum()), only_robustmix=int((fooled_ours & ~fooled_ref).sum()),
               share_of_reference_fooled=share,
               seconds={k: sum(merged[k]["times"].values()) for k in ("robustmix", "autoattack")})
    lines += ["", f"Per example: of the {int(fooled_ref.sum())} examples AutoAttack fools, robustmix fools {share:.1f}% "
              f"({doc['only_reference']} only AutoAttack, {doc['only_robustmix']} only robustmix).",
              f"Total time: robustmix {doc['seconds']['robustmix']:.1f} s, AutoAttack {doc['seconds']['autoattack']:.1f} s."]
    if ta is not None:
        budget = f"{ta['steps']} steps" if ta.get("steps") else "its 10-step defaults"
        doc["torchattacks"] = {"robust_acc": 100 * ta["robust"].float().mean().item(), "seconds": ta["seconds"]}
        lines.append(f"torchattacks AutoAttack (standard, {budget}): robust acc. {doc['torchattacks']['robust_acc']:.2f}%, "
                     f"{ta['seconds']:.1f} s; robustmix / torchattacks speed: {ta['seconds'] / doc['seconds']['robustmix']:.2f}×.")
    return lines, doc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", nargs="?")
    p.add_argument("--data", default="digits")
    p.add_argument("--eps", type=float, help="0–255 scale")
    p.add_argument("--examples", type=int, default=None, help="a stratified subset (seed 0); default: the whole test set")
    p.add_argument("--json", default=None)
    p.add_argument("--skip-torchattacks", action="store_true")
    p.add_argument("--torchattacks-steps", type=int, default=None,
                   help="build torchattacks' standard cascade with this many steps for APGD, APGD-T and FAB (100: the paper's); "
                        "default: its AutoAttack as shipped (10 steps)")
    p.add_argument("--part", default=None, metavar="K/N",
                   help="run only the K-th (1-based) of N equal slices of the examples, into --parts DIR/part-K-of-N.json "
                        "(skipped when that file exists: a long run continues where it stopped, on any machine)")
    p.add_argument("--parts", default=None, metavar="DIR", help="the folder of --part's files; alone (no checkpoint): combine "
                   "the parts found there into one table")
    args = p.parse_args()
    if args.checkpoint is None:
        if not args.parts:
            p.error("give a checkpoint, or --parts DIR to combine parts")
        files = sorted(Path(args.parts).glob("part-*.json"))
        if not files:
            p.error(f"no part-*.json in {args.parts}")
        parts = [json.loads(f.read_text()) for f in files]
        head = parts[0]
        if len({(q["weights_sha256"], q["eps_255"], q["examples"], q["of"]) for q in parts}) != 1:
            p.error(f"the parts in {args.parts} come from different checkpoints, eps, subsets or splits: keep one run per folder")
        lines, doc = table(f"{head['checkpoint']} on {sum(len(q['robustmix']['robust']['clean']) for q in parts)} {head['data']} test "
                           f"images ({len(parts)} of {head['of']} parts), eps {head['eps_255']:g}/255; "
                           f"{head['processor']}, {head['threads']} thread(s)", combine(parts))
        print("\n".join(lines))
        if args.json:
            Path(args.json).write_text(json.dumps({**doc, "parts": [f.name for f in files]}, indent=1))
        return
    if args.eps is None:
        p.error("--eps is required with a checkpoint")
    torch.manual_seed(0)
    model, meta = load_checkpoint(args.checkpoint)
    model.eval()
    data = load_dataset(args.data)
    x, y = data.x_test, data.y_test
    if args.examples and args.examples < len(y):
        pick = stratified_subset(y, args.examples, seed=0)
        x, y = x[pick], y[pick]
    target = None
    if args.part:
        k, n_parts = (int(v) for v in args.part.split("/"))
        if not args.parts or not 1 <= k <= n_parts:
            p.error("--part K/N needs 1 <= K <= N and --parts DIR")
        target = Path(args.parts) / f"part-{k:03d}-of-{n_parts:03d}.json"
        if target.is_file():
            print(f"{target} exists: skipped", file=sys.stderr)
            return
        bounds = [round(i * len(y) / n_parts) for i in range(n_parts + 1)]
        x, y = x[bounds[k - 1]:bounds[k]], y[bounds[k - 1]:bounds[k]]
    x = pixels(x).float()
    eps = args.eps / 255
    counted = Counted(model).eval()
    fwd, fb = per_row_times(model, x[:250], y[:250])
    runs = [cascade("robustmix", robustmix_attacks(counted, eps), counted, x, y, eps),
            cascade("AutoAttack (pyautoattack)", autoattack_attacks(counted, eps), counted, x, y, eps)]
    # named without this machine's paths (parts are committed and combined on other machines), bound to the weights
    named = {"checkpoint": Path(args.checkpoint).name, "weights_sha256": meta.get("weights_sha256"),
             "data": "imagefolder:$DATA" if args.data.startswith("imagefolder:") else args.data}
    part = {**named, "eps_255": args.eps, "examples": args.examples, **part_doc(runs, fwd, fb)}
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({**part, "part": k, "of": n_parts}))
        tmp.replace(target)  # atomic: a part file is whole or absent
    ta = None
    if not args.skip_torchattacks:
        adv, seconds = torchattacks_autoattack(model, x, y, eps, int(meta.get("num_classes", 10)), steps=args.torchattacks_steps)
        ta = {"robust": ~wrong(model, adv, x, y, eps) & runs[0]["robust"]["clean"], "seconds": seconds, "steps": args.torchattacks_steps}
    lines, doc = table(f"{args.checkpoint} on {len(y)} {args.data} test images, eps {args.eps:g}/255; "
                       f"{part['processor']}, {part['threads']} thread(s)", combine([part]), ta)
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**named, "eps_255": args.eps, "examples": args.examples, "processor": part["processor"],
                       "threads": part["threads"], "fwd_s_per_row": fwd, "fb_s_per_row": fb, **doc}, f, indent=1)


if __name__ == "__main__":
    main()
