"""Attack speed, side by side: robustmix vs torchattacks vs a bare forward+backward loop.

Run from the repository root:  python benchmarks/attack_speed.py  (writes reports/perf.md)

One process; every repetition runs all contenders of a benchmark back to back (interleaved, the
order rotated each repetition), after one warm-up round; the figure is the median over
--reps repetitions, on the same model, batch and device. Five benchmarks per model:
1. I-FGSM (10 iters, eps 4/255) vs torchattacks BIM, and vs the floor: a bare loop of 10
   forward+backward passes (input gradient only, no sign, no projection).
2. FGSM at 8 eps from robustmix's one-backward sweep vs torchattacks FGSM called once per eps.
3. The paper's Table 3 (white-box and black-box, FGSM and I-FGSM at eps 4/255, two targets, one
   surrogate, clean error too) with robustmix.evaluation.evaluator vs a straightforward loop calling
   torchattacks once per cell and scoring each cell with one forward.
4. PGD vs torchattacks PGD, adv-lib's pgd_linf and the floor; 5. APGD-CE vs adv-lib's apgd and
   the floor (benchmarks/strong_speed.py).
robustmix runs with its defaults (float32; evaluate's channels_last "auto"); the opt-in modes
(--amp bf16, --amp bf16-all, and NCHW for comparison) are timed in the same rounds and reported
in rows of their own. torchattacks runs with its defaults (set_model_training_mode untouched:
eval mode); its attack objects are built once, outside the timed region.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from robustmix.attacks import fgsm_sweep, ifgsm  # noqa: E402
from robustmix.data import load_dataset  # noqa: E402
from robustmix.runtime.devices import processor  # noqa: E402
from robustmix.store.checkpoint import Checkpoint  # noqa: E402
from robustmix.evaluation.evaluator import EvalConfig, evaluate  # noqa: E402
from robustmix.models.predict import topk_correct  # noqa: E402
from robustmix.models import build_model  # noqa: E402
from robustmix.evaluation.plan import naive_cost, total_cost  # noqa: E402
from robustmix.evaluation.evaluator import channels_last_for, plan_evaluation  # noqa: E402

import strong_speed  # noqa: E402  (benchmarks 4 and 5: PGD and APGD)

EPS = 4 / 255
SWEEP = tuple(e / 255 for e in (1, 2, 3, 4, 6, 8, 12, 16))
ITERS = 10


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def workload(name: str, batch: int, device: torch.device):
    """(three models with different random weights, x, y, description)."""
    if name == "cnn":
        d = load_dataset("digits")
        x, y = d.x_test[:batch].clone(), d.y_test[:batch].clone()
        kw = dict(in_channels=1, num_classes=10, image_size=8, mean=d.mean, std=d.std)
        desc = f"SmallCNN (width 32), random weights (seeds 0-2); {batch} digits test images 1×8×8"
    else:
        gen = torch.Generator().manual_seed(0)
        x, y = torch.rand(batch, 3, 32, 32, generator=gen), torch.randint(0, 10, (batch,), generator=gen)
        kw = dict(in_channels=3, num_classes=10, image_size=32, mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010))
        desc = f"PreAct ResNet-18 (width 64), random weights (seeds 0-2); {batch} random 3×32×32 images in [0, 1], random labels"
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_model(name, **kw).to(device).eval())
    return models, x.to(device), y.to(device), desc


def floor(model, x, y, iters=ITERS):
    """The bare minimum of I-FGSM's work: iters forward+backward passes for d loss / d x."""
    xa = x
    for _ in range(iters):
        xa = xa.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y, reduction="sum"), xa)
    return g


def forward_only(model, x):
    with torch.inference_mode():
        return model(x)


def table_torchattacks(ta, targets, surrogate, x, y):
    """The straightforward loop: one torchattacks call and one scoring forward per Table 3 cell."""
    out = {}
    for i, t in enumerate(targets):
        with torch.no_grad():
            logits = t(x)
        out[(i, "clean")] = (topk_correct(logits, y, 1), topk_correct(logits, y, 5))
        for setting, source in (("white-box", t), ("black-box", surrogate)):
            for attack in ("fgsm", "ifgsm"):
                atk = ta[(id(source), attack)]
                x_adv = atk(x, y)
                with torch.no_grad():
                    logits = t(x_adv)
                out[(i, setting, attack)] = (topk_correct(logits, y, 1), topk_correct(logits, y, 5))
    return out


def bench(contenders: dict, reps: int, device) -> dict[str, float]:
    """Median seconds per contender; all contenders run in every repetition, order rotated."""
    names = list(contenders)
    times = {n: [] for n in names}
    for n in names:  # warm-up round
        contenders[n]()
    sync(device)
    for r in range(reps):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            sync(device)
            t0 = time.perf_counter()
            contenders[n]()
            sync(device)
            times[n].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in times.items()}


def run_model(name: str, batch: int, reps: int, device, log, which=("1", "2", "3")) -> dict:
    import torchattacks

    models, x, y, desc = workload(name, batch, device)
    m, t2, sur = models[0], models[1], models[2]
    log(f"[{name}] {desc}")
    ta = {}
    for model in models:
        ta[(id(model), "fgsm")] = torchattacks.FGSM(model, eps=EPS)
        ta[(id(model), "ifgsm")] = torchattacks.BIM(model, eps=EPS, alpha=EPS / ITERS, steps=ITERS)
    fgsm_per_eps = [torchattacks.FGSM(m, eps=e) for e in SWEEP]
    res = {"desc": desc, "batch": batch}

    targets = [Checkpoint("t1", m), Checkpoint("t2", t2)]
    config = EvalConfig(eps=(EPS,), iters=ITERS, batch_size=batch)
    variant = lambda **kw: EvalConfig(**{**config.to_dict(), **kw})  # noqa: E731
    table = lambda c: evaluate(targets, x, y, c, surrogate=Checkpoint("s", sur), device=device)  # noqa: E731
    benchmarks = {
        "pass": {"forward": lambda: forward_only(m, x), "forward+backward": lambda: floor(m, x, y, iters=1)},
        "ifgsm": {
            "robustmix ifgsm": lambda: ifgsm(m, x, y, eps=EPS, iters=ITERS),
            "torchattacks BIM": lambda: ta[(id(m), "ifgsm")](x, y),
            "floor (10 fwd+bwd)": lambda: floor(m, x, y),
            "robustmix ifgsm bf16-all": lambda: ifgsm(m, x, y, eps=EPS, iters=ITERS, amp="bf16-all"),
        },
        "fgsm8": {
            "robustmix fgsm_sweep (8 eps)": lambda: fgsm_sweep(m, x, y, eps=SWEEP),
            "torchattacks FGSM x8": lambda: [a(x, y) for a in fgsm_per_eps],
            "robustmix fgsm x1": lambda: fgsm_sweep(m, x, y, eps=SWEEP[:1]),
            "torchattacks FGSM x1": lambda: fgsm_per_eps[0](x, y),
        },
        "table": {
            "robustmix evaluate": lambda: table(config),
            "torchattacks per cell": lambda: table_torchattacks(ta, [m, t2], sur, x, y),
            "robustmix evaluate NCHW": lambda: table(variant(channels_last=False)),
            "robustmix evaluate bf16": lambda: table(variant(amp="bf16")),
            "robustmix evaluate bf16-all": lambda: table(variant(amp="bf16-all")),
        },
    }
    benchmarks.update(strong_speed.contenders(m, x, y, EPS))
    for key, number in (("pass", "0"), ("ifgsm", "1"), ("fgsm8", "2"), ("table", "3"), ("pgd", "4"), ("apgd", "5")):
        if number == "0" or number in which:
            res[key] = bench(benchmarks[key], reps, device)
            log(f"  {key}: {res[key]}")
    plan, _ = plan_evaluation(["t1", "t2"], "s", config, batch)
    res["plan"] = total_cost(plan)
    res["channels_last"] = channels_last_for(config, device)
    res["naive"] = naive_cost(2, attacks=config.attacks, n_eps=1, iters=ITERS, settings=config.settings)
    return res


def machine(device) -> list[str]:
    cpu = processor("cpu")
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    lines = [
        f"- CPU: {cpu}; {os.cpu_count()} logical cores visible; torch threads: {torch.get_num_threads()}; "
        f"bf16 hardware: {', '.join(bf16) or 'none'}",
        f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"- device: {device}" + (f" ({processor(device)})" if device.type == "cuda" else ""),
    ]
    try:
        import torchattacks

        lines.append(f"- torchattacks {torchattacks.__version__}")
    except Exception:  # noqa: BLE001
        pass
    return lines


def ratio_row(what, ours, ref, target) -> str:
    r = ref / ours
    return f"| {what} | {ours * 1e3:.1f} | {ref * 1e3:.1f} | **{r:.2f}×** | ≥ {target}× | {'met' if r >= target else 'NOT met'} |"


def render(results: dict, device, command: str, load: tuple, reps: int) -> str:
    out = ["# Attack speed: robustmix vs torchattacks", "", f"Command: `{command}`", "", "Machine:", *machine(device)]
    out.append(f"- load average before / after: {load[0]:.2f} / {load[1]:.2f} (the machine is shared; see notes)")
    out.append(f"- median of {reps} interleaved repetitions after one warm-up round; times in ms per call")
    for name, r in results.items():
        p, i, f8, tb = r["pass"], r.get("ifgsm"), r.get("fgsm8"), r.get("table")
        tf, tfb = p["forward"], p["forward+backward"]
        (pf, pb), (nf, nb) = r["plan"], r["naive"]
        limit = (nf * tf + nb * (tfb - tf)) / (pf * tf + pb * (tfb - tf))
        out += [
            "",
            f"## {name}: {r['desc']}",
            "",
            f"One forward (inference mode): {tf * 1e3:.1f} ms; one forward+backward (input gradient): {tfb * 1e3:.1f} ms.",
            "",
            "| benchmark | robustmix ms | reference ms | ratio | target | |",
            "|---|---:|---:|---:|---:|---|",
        ]
        if i:
            out.append(ratio_row("1a. I-FGSM 10 iters vs torchattacks BIM", i["robustmix ifgsm"], i["torchattacks BIM"], 1.0))
            out.append(ratio_row("1b. I-FGSM 10 iters vs floor (10 bare fwd+bwd)", i["robustmix ifgsm"], i["floor (10 fwd+bwd)"], 0.9))
        if f8:
            out.append(ratio_row("2. FGSM at 8 eps vs torchattacks FGSM ×8", f8["robustmix fgsm_sweep (8 eps)"], f8["torchattacks FGSM x8"], 3.0))
        if tb:
            layout = "channels_last" if r["channels_last"] else "NCHW"
            out.append(ratio_row(f"3. Table 3 (2 targets, 1 surrogate) vs torchattacks per cell; default: float32, {layout}", tb["robustmix evaluate"], tb["torchattacks per cell"], 1.8))
        else:
            out.append("| 3. Table 3 vs torchattacks per cell | not run (--benchmarks) | | | ≥ 1.8× | not measured |")
        out += strong_speed.rows(r, ratio_row)
        opt_in = []
        if i:
            opt_in.append(ratio_row("1a. I-FGSM, `amp=\"bf16-all\"`, vs torchattacks BIM", i["robustmix ifgsm bf16-all"], i["torchattacks BIM"], 1.0))
        if tb:
            for label, key in (("NCHW (`--no-channels-last`)", "NCHW"), ("`--amp bf16` (scoring forwards bf16, gradients float32)", "bf16"), ("`--amp bf16-all` (gradients bf16 too)", "bf16-all")):
                opt_in.append(ratio_row(f"3. Table 3, {label}, vs torchattacks per cell", tb[f"robustmix evaluate {key}"], tb["torchattacks per cell"], 1.8))
        if opt_in:
            out += ["", "Other robustmix settings, timed in the same rounds against the same reference:", "",
                    "| benchmark | robustmix ms | reference ms | ratio | target | |", "|---|---:|---:|---:|---:|---|", *opt_in]
        if f8:
            out += [
                "",
                f"Per-call overhead check (FGSM at one eps, same work: 1 forward + 1 backward): robustmix "
                f"{f8['robustmix fgsm x1'] * 1e3:.2f} ms, torchattacks {f8['torchattacks FGSM x1'] * 1e3:.2f} ms.",
            ]
        out += [
            "",
            f"Table 3 pass count: robustmix {pf} forward + {pb} backward per batch, the per-cell loop {nf} + {nb}. "
            f"With the measured pass times above, that pass count alone limits the Table 3 speed-up to "
            f"**{limit:.2f}×** when every pass is compute-bound (per-call overheads ignored).",
        ]
    return "\n".join(out) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="cnn,preact_resnet18", help="comma-separated model names (default cnn,preact_resnet18)")
    p.add_argument("--batch-cnn", type=int, default=256, help="batch for the small CNN (default 256)")
    p.add_argument("--batch-resnet", type=int, default=32, help="batch for PreAct ResNet-18 (default 32)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per benchmark, median reported (default 5, min 5)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", type=Path, default=Path("reports/perf.md"), help="report path (default reports/perf.md)")
    p.add_argument("--benchmarks", default="1,2,3,4,5", help="which benchmarks to run, comma-separated: 1 I-FGSM, 2 FGSM sweep, 3 Table 3, 4 PGD, 5 APGD (default all)")
    p.add_argument("--notes", type=Path, default=None, help="Markdown appended to the report (the analysis)")
    args = p.parse_args()
    if args.reps < 5:
        p.error("--reps must be at least 5")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    load0 = os.getloadavg()[0]
    results = {}
    for name in args.models.split(","):
        batch = args.batch_cnn if name == "cnn" else args.batch_resnet
        results[name] = run_model(name, batch, args.reps, device, log, tuple(args.benchmarks.split(",")))
    command = "python " + " ".join([sys.argv[0], *sys.argv[1:]])
    text = render(results, device, command, (load0, os.getloadavg()[0]), args.reps)
    if args.notes and args.notes.is_file():
        text += "\n" + args.notes.read_text()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
