"""`robustmix attack`: attack the target checkpoints (white-box) and transfer from the surrogate
(black-box); print the Table 3 layout and save the records."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..attacks import AMP_MODES, CPU_AUTO_BATCH, SETTINGS, SUITES
from ..data import Dataset
from ..evaluation.evaluator import (
    EvalConfig,
    evaluate,
    plan_evaluation,
    resolve_batch_size,
)
from ..evaluation.plan import naive_cost, render_plan
from ..reporting.tables import render_markdown
from ..reporting.text import soundness, soundness_markdown
from ..runtime import distributed
from ..runtime.devices import resolve_device
from ..runtime.errors import RobustmixError
from ..store.checkpoint import Checkpoint, provenance
from ..store.results import save_results
from ..store.runs import (
    check_compatible,
    check_fits,
    evaluation_examples,
    find_surrogate,
    find_targets,
    load_data_of,
    open_checkpoints,
)
from .common import EPS_HELP, bar, eps_list, name_list, positive_int, say, writable_path
from .minimal import add_minimal_arguments, run_minimal
from .suite import add_suite_arguments, suite_config, suite_settings

HELP = ("attack checkpoints (white-box and black-box) with the paper's FGSM / I-FGSM, --suite strong (PGD, APGD-CE, APGD-DLR, "
        "APGD-T, Square, worst case) or --suite autoattack (AutoAttack's standard cascade); print the error table, the soundness "
        "checks and the verdicts; --dry-run prints the plan of passes")
D = EvalConfig()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=Path, default=Path("runs"), help="folder whose checkpoints are used when --targets is not given (default runs)")
    p.add_argument("--targets", type=Path, nargs="+", default=None, help="target checkpoint folders (default: every checkpoint in --runs whose role is target)")
    p.add_argument("--surrogate", type=Path, default=None, help="surrogate checkpoint for black-box examples (default: the one in --runs whose role is surrogate)")
    p.add_argument("--eps", type=eps_list, default=(4 / 255,), help=f"maximum L∞ perturbation, {EPS_HELP} (default 4)")
    p.add_argument("--iters", type=positive_int, default=D.iters, help=f"I-FGSM iterations with step eps/iters; --iters 1 is FGSM (default {D.iters})")
    add_suite_arguments(p)
    add_minimal_arguments(p)
    p.add_argument("--settings", type=name_list(SETTINGS), default=None,
                   help=f"comma-separated: {', '.join(SETTINGS)} (default {','.join(D.settings)}; white-box for --suite autoattack)")
    p.add_argument("--batch-size", type=batch_size, default=D.batch_size, help=f"most rows in one forward/backward pass (with several eps stacked, examples per pass = this / number of eps), or 'auto': the largest that fits on CUDA, {CPU_AUTO_BATCH} elsewhere (default {D.batch_size})")
    p.add_argument("--stack-eps", action=argparse.BooleanOptionalAction, default=D.stack_eps, help="run all eps in one stacked batch (per-example eps and step); --no-stack-eps loops over eps (default on)")
    p.add_argument("--amp", choices=AMP_MODES, default=D.amp, help="opt-in bfloat16 autocast, for CUDA and CPUs with AMX/AVX512-BF16: bf16 runs the forward-only passes (clean, scoring) in bf16 and keeps every attack gradient float32; bf16-all runs the gradients in bf16 too (2.5× faster I-FGSM for PreAct ResNet-18 on a Xeon with AMX); logits, loss and gradients are float32 tensors; on trained CIFAR-10 checkpoints error moved by at most 0.12 pp, reports/perf.md (default none)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="models and batches in channels_last memory format; --no-channels-last for NCHW (default auto: on for CPU, where it measured as fast or faster, reports/perf.md, and on CUDA with either --amp mode)")
    p.add_argument("--compile", action="store_true", help="torch.compile the models (opt-in, for CUDA; the first batches pay the compile time; on CPU measured no faster than eager, reports/perf.md)")
    p.add_argument("--examples", type=positive_int, default=None, help="evaluate a stratified subset of N test examples (seed 0: the same subset every time; default all)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (every pass, and the number of forward/backward passes) and exit without attacking")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--out", type=Path, default=None, help="results JSON (a CSV is written beside it); default runs/results/attack-eps<E>-iters<N>.json")
    p.add_argument("--allow-legacy", action="store_true", help="also load .pt/.pth state dicts (beside a meta.json), through torch.load(weights_only=True), which refuses pickled code")


def batch_size(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'auto' or an integer >= 1") from None


def choose(args: argparse.Namespace) -> tuple[list[Path], Path | None]:
    """Target and surrogate folders from the flags, or from the roles recorded in --runs."""
    targets = list(args.targets) if args.targets is not None else find_targets(args.runs)
    surrogate = args.surrogate
    if surrogate is None and "black-box" in args.settings:
        surrogate = find_surrogate(args.runs)
    return targets, surrogate


def eval_config(args: argparse.Namespace) -> EvalConfig:
    args.settings = suite_settings(args, D.settings)
    config = EvalConfig(
        eps=args.eps,
        iters=args.iters,
        settings=args.settings,
        batch_size=args.batch_size,
        device=args.device,
        stack_eps=args.stack_eps,
        amp=args.amp,
        channels_last="auto" if args.channels_last is None else args.channels_last,
        compile=args.compile,
        **suite_config(args),
    )
    if args.iters == 1 and {"fgsm", "ifgsm"} <= set(config.attacks):
        # I-FGSM with one step of size eps *is* FGSM: don't compute (or print) it twice.
        config = EvalConfig(**{**config.to_dict(), "attacks": tuple(a for a in config.attacks if a != "ifgsm")})
    config.validate()
    if args.surrogate is not None and "black-box" not in config.settings:
        raise RobustmixError("--surrogate is only used for black-box examples: drop it or add black-box to --settings")
    return config


def load_models(args: argparse.Namespace, device) -> tuple[list[Checkpoint], Checkpoint | None, Dataset]:
    """(targets, surrogate, their data set in the form they were trained on), checked to go together."""
    target_paths, surrogate_path = choose(args)
    targets = open_checkpoints(target_paths, device, allow_legacy=args.allow_legacy, what="targets")
    surrogate = open_checkpoints([surrogate_path], device, allow_legacy=args.allow_legacy)[0] if surrogate_path else None
    dataset = check_compatible(targets + ([surrogate] if surrogate else []))
    data = load_data_of(targets[0].meta)
    for c in targets + ([surrogate] if surrogate else []):
        check_fits(c.meta, data.num_classes, data.input_shape, name=c.name, dataset=dataset)
    return targets, surrogate, data


def run(args: argparse.Namespace) -> int:
    if args.minimal:  # white-box: the search attacks each target itself
        if args.settings not in (None, ("white-box",)):
            raise RobustmixError("--minimal is white-box only: drop --settings or use --settings white-box")
        if args.nest_eps:  # the search attacks each example at one eps of its own: nothing to nest
            raise RobustmixError("--nest-eps does not apply to --minimal (its search picks one eps per example): drop it")
        args.settings = ("white-box",)
    config = eval_config(args)
    world, device = distributed.init(resolve_device(args.device))  # torchrun: one shard per rank
    targets, surrogate, data = load_models(args, device)
    x, y = evaluation_examples(data, args.examples)
    if args.minimal:
        return run_minimal(args, config, targets, x, y, data, device)
    if args.dry_run:
        print(dry_run(config, targets, surrogate, x, device))
        return 0

    writable_path(args.out or Path("runs") / "results" / "attack.json")  # fail now, not after the attacks
    if world.is_main:
        subset = f" (a stratified subset of {data.y_test.numel()}, seed 0)" if args.examples else ""
        say(f"evaluating {x.shape[0]} test examples of {data.name}{subset}")
    progress = bar(total=0, desc="attack")

    def on_batch(done: int, total: int) -> None:
        progress.total = total
        progress.update(1)

    probes: list[dict] = []
    try:
        records = evaluate(targets, x, y, config, surrogate=surrogate, device=device, on_batch=on_batch, world=world,
                           probes=probes)
    finally:
        progress.close()
    if not world.is_main:  # every rank holds the gathered records; rank 0 alone writes and prints
        return 0
    eps_tag = "-".join(f"{e * 255:g}" for e in config.eps)
    suite = next((f"{name}-" for name, attacks in SUITES.items() if attacks == config.attacks and name != "paper"), "")
    out = args.out or Path("runs") / "results" / f"attack-{suite}eps{eps_tag}-iters{config.iters}.json"
    checkpoints = {c.name: provenance(c.meta) for c in targets + ([surrogate] if surrogate else [])}
    setup = {**config.to_dict(), "dataset": targets[0].meta["dataset"], "examples": args.examples, "device": str(device)}
    checks, _ = soundness(records, probes)
    save_results(out, records, config=setup, checkpoints=checkpoints, probes=probes, checks=[c.to_dict() for c in checks])
    print(render_markdown(records) + soundness_markdown(records, probes))
    say(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


def dry_run(config: EvalConfig, targets: list[Checkpoint], surrogate: Checkpoint | None, x, device) -> str:
    """The plan that `robustmix attack` would run, with its forward/backward pass counts."""
    used = targets + ([surrogate] if surrogate is not None and "black-box" in config.settings else [])
    for c in used:
        c.model.to(device)
    rows = resolve_batch_size(config, [c.model for c in used], x, device)
    share = min(1.0, config.probe_examples / x.shape[0]) if config.probe_examples else 1.0
    plan, chunk = plan_evaluation([t.name for t in targets], surrogate.name if surrogate else None, config, rows, probe_share=share)
    naive = naive_cost(len(targets), attacks=config.attacks, n_eps=len(config.eps), iters=config.iters, settings=config.settings,
                       budget=config.budget)
    return render_plan(plan, n_examples=x.shape[0], chunk=chunk, naive=naive) + f"\n(dry run on {device}: nothing attacked, nothing written)"
