"""Square on survivors against Square on every example, side by side in one run: what
`robustmix attack --suite strong --settings white-box --square-on all|survivors` does, on the
quickstart's digits targets, the two alternated round by round. Per run: wall seconds and the rows
every model call saw (a forward pre-hook counts them: the gradient attacks' passes are the same in
both, so the difference is Square's), and the check that the per-example worst case (top-1) is the
same bit for bit.

    robustmix quickstart --runs runs          # the checkpoints (once)
    python benchmarks/square_survivors.py --runs runs --eps 4,16,32 --rounds 2 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from robustmix.attacks import ATTACKS, SUITES, WORST
from robustmix.attacks.budget import SQUARE_ON
from robustmix.cli.common import eps_list
from robustmix.data import load_dataset
from robustmix.evaluation.evaluator import EvalConfig, evaluate
from robustmix.store.runs import find_targets, open_checkpoints


def count_rows(models) -> tuple[list[int], list]:
    """A one-element counter of the rows every forward call of `models` gets, and the hook handles."""
    seen = [0]

    def hook(module, inputs):
        seen[0] += inputs[0].shape[0]

    return seen, [m.register_forward_pre_hook(hook) for m in models]


def survivors(records: list[dict], target: str, eps_255: float) -> int:
    """Examples every gradient attack left correctly classified (top-1): what Square on survivors attacks."""
    grads = [r for r in records if (r["target"], r["eps_255"], r["setting"]) == (target, eps_255, "white-box")
             and r["attack"] in ATTACKS and not ATTACKS[r["attack"]].gradient_free]
    return sum(all(bits) for bits in zip(*[[c == "1" for c in r["top1_correct"]] for r in grads]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=Path("runs"), help="the folder `robustmix quickstart` wrote (its targets are attacked)")
    p.add_argument("--eps", type=eps_list, default=(4 / 255, 16 / 255, 32 / 255), help="0–255 scale (default 4,16,32)")
    p.add_argument("--examples", type=int, default=None, help="the first N test examples (default all 360)")
    p.add_argument("--rounds", type=int, default=2, help="alternated rounds of all, survivors (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    targets = open_checkpoints(find_targets(args.runs), torch.device("cpu"))
    data = load_dataset("digits")
    x, y = data.x_test[: args.examples], data.y_test[: args.examples]
    seen, hooks = count_rows([t.model for t in targets])
    worst: dict[str, dict] = {}
    print(f"{len(targets)} targets, {x.shape[0]} examples, eps {', '.join(f'{e * 255:g}' for e in args.eps)}/255, "
          f"{torch.get_num_threads()} thread(s); strong suite, white-box, default budget, checks on")
    walls: dict[str, list[float]] = {on: [] for on in SQUARE_ON}
    for r in range(args.rounds):
        for on in SQUARE_ON:
            config = EvalConfig(eps=args.eps, attacks=SUITES["strong"], settings=("white-box",), square_on=on, device="cpu")
            seen[0] = 0
            start = time.perf_counter()
            records = evaluate(targets, x, y, config, probes=[])
            walls[on].append(time.perf_counter() - start)
            rows = seen[0]
            got = {(q["target"], q["eps_255"]): q for q in records if q["attack"] == WORST}
            square = {(q["target"], q["eps_255"]): q["top1_err"] for q in records if q["attack"] == "square"}
            attacked = {k: x.shape[0] if on == "all" else survivors(records, *k) for k in square}
            if worst.get(on) is None:
                worst[on] = got
            print(f"round {r + 1} {on:9}: {walls[on][-1]:7.1f} s, {rows:,} forward rows; worst-case top-1 % "
                  + ", ".join(f"{t[0][-16:]}@{t[1]:g} {q['top1_err']:.2f}" for t, q in got.items())
                  + "; Square top-1 % " + ", ".join(f"{v:.2f}" for v in square.values())
                  + "; examples Square attacked " + ", ".join(str(v) for v in attacked.values()))
    for h in hooks:
        h.remove()
    same = all(worst["all"][k]["top1_correct"] == worst["survivors"][k]["top1_correct"] for k in worst["all"])
    same5 = all(worst["all"][k]["top5_correct"] == worst["survivors"][k]["top5_correct"] for k in worst["all"])
    best = {on: min(w) for on, w in walls.items()}
    print(f"worst case per example identical: top-1 {same}, top-5 {same5}; best wall all {best['all']:.1f} s, survivors "
          f"{best['survivors']:.1f} s: {best['all'] / best['survivors']:.2f}× faster")


if __name__ == "__main__":
    main()
