"""How far mixed precision moves the error table on trained checkpoints, and what it saves.

Run from a folder of checkpoints (targets and a surrogate, found by role as `robustmix attack`
finds them), e.g. after training the cpu-fast CIFAR-10 models of reports/cifar10-cpu.md:

    python benchmarks/amp_error.py --runs runs --eps 4,8 --out amp.md

Evaluates the whole test set once per amp mode ("none", "bf16", "bf16-all"), each with the
same plan, and prints one row per record: the float32 top-1 error, and for each bf16 mode the
change in percentage points and the number of test images whose outcome flipped. Times are wall
seconds of each whole evaluation, run one after another in this process (not interleaved:
each takes minutes; quote them as a rough ratio, reports/perf.md has the interleaved ones).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robustmix.data import load_dataset  # noqa: E402
from robustmix.runtime.devices import processor, resolve_device  # noqa: E402
from robustmix.runtime.errors import RobustmixError  # noqa: E402
from robustmix.evaluation.evaluator import EvalConfig, evaluate  # noqa: E402
from robustmix.store.runs import find_surrogate, find_targets, open_checkpoints  # noqa: E402

MODES = ("none", "bf16", "bf16-all")


def key(r: dict) -> tuple:
    return (r["target"], r["setting"], r["attack"], r["eps_255"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder of checkpoints with roles target and surrogate (default runs)")
    p.add_argument("--eps", default="4,8", help="eps on the 0–255 scale, comma-separated (default 4,8)")
    p.add_argument("--iters", type=int, default=10, help="I-FGSM iterations (default 10)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = p.parse_args()
    device = resolve_device(args.device)
    try:
        targets = open_checkpoints(find_targets(args.runs), device, what="targets")
        surrogate = open_checkpoints([find_surrogate(args.runs)], device)[0]
    except RobustmixError as e:
        p.error(str(e))
    data = load_dataset(targets[0].meta["dataset"])
    eps = tuple(float(e) / 255 for e in args.eps.split(","))
    records, seconds = {}, {}
    for mode in MODES:
        config = EvalConfig(eps=eps, iters=args.iters, amp=mode)
        t0 = time.perf_counter()
        out = evaluate(targets, data.x_test, data.y_test, config, surrogate=surrogate, device=device)
        seconds[mode] = time.perf_counter() - t0
        records[mode] = {key(r): r for r in out}
        print(f"{mode}: {seconds[mode]:.1f} s", file=sys.stderr, flush=True)

    n = next(iter(records["none"].values()))["n"]
    lines = [
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"{len(targets)} targets, surrogate {surrogate.name}, data set {targets[0].meta['dataset']} ({n} test images), "
        f"I-FGSM {args.iters} iterations; device {device} ({processor(device)}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads.",
        "",
        "| target | setting | attack | eps | float32 top-1 error | bf16: change (images flipped) | bf16-all: change (images flipped) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    worst = {m: 0.0 for m in MODES[1:]}
    for k, r in records["none"].items():
        cells = []
        for mode in MODES[1:]:
            o = records[mode][k]
            d = o["top1_err"] - r["top1_err"]
            worst[mode] = max(worst[mode], abs(d))
            flips = sum(a != b for a, b in zip(o["top1_correct"], r["top1_correct"]))
            cells.append(f"{d:+.2f} pp ({flips})")
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]:g} | {r['top1_err']:.2f}% | {' | '.join(cells)} |")
    lines += [
        "",
        "Largest change: " + ", ".join(f"{m} {worst[m]:.2f} pp" for m in worst) + ".",
        "Wall time of the whole evaluation: " + ", ".join(f"{m} {seconds[m]:.0f} s" for m in MODES)
        + f" ({seconds['none'] / seconds['bf16']:.2f}× and {seconds['none'] / seconds['bf16-all']:.2f}× faster than float32).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
