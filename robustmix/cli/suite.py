"""The attack suites on the command line (`--suite paper|strong|autoattack`, the strong attacks'
budget), and the soundness checks and verdicts that `attack` and `report` print after the tables."""

from __future__ import annotations

import argparse

from ..attacks import ATTACKS, COMBINED, SUITE_SETTINGS, SUITES, Budget
from ..attacks.budget import SQUARE_ON
from .common import name_list, nonneg_int, positive_int

B = Budget()
ATTACK_NAMES = (*ATTACKS, *COMBINED)
GRADIENT_LABELS = ", ".join(ATTACKS[a].label for a in SUITES["strong"] if a in ATTACKS and not ATTACKS[a].gradient_free)
NESTING_LABELS = ", ".join(a.label for a in ATTACKS.values() if a.nests)
BUDGET_FLAGS = ("pgd_iters", "pgd_restarts", "apgd_iters", "apgd_restarts", "square_queries", "target_classes", "fab_iters")


def add_suite_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", choices=tuple(SUITES), default="paper",
                   help="paper: FGSM and I-FGSM (the paper's table); strong: paper + PGD with restarts, APGD-CE, APGD-DLR, APGD-T, "
                        "Square and the per-example worst case over them, the number a robustness claim should quote; autoattack: "
                        "AutoAttack's standard version exactly (APGD-CE, APGD-T, FAB-T, Square 5,000 queries, each on the examples the "
                        "ones before it left, white-box), with its record 'AutoAttack (standard)' beside each attack's (default paper)")
    p.add_argument("--attacks", type=name_list(ATTACK_NAMES), default=None,
                   help=f"comma-separated, instead of --suite: {', '.join(ATTACK_NAMES)} (worst-case: right under every other attack run; "
                        "autoattack: right under AutoAttack's four)")
    p.add_argument("--pgd-iters", type=positive_int, default=None, help=f"PGD steps per restart, step 2.5·eps/steps (default {B.pgd_iters})")
    p.add_argument("--pgd-restarts", type=positive_int, default=None, help=f"PGD random restarts; each attacks only the examples not yet fooled (default {B.pgd_restarts})")
    p.add_argument("--apgd-iters", type=positive_int, default=None, help=f"APGD-CE/APGD-DLR/APGD-T iterations (default {B.apgd_iters}, as in the paper and AutoAttack)")
    p.add_argument("--target-classes", type=positive_int, default=None,
                   help=f"APGD-T and FAB-T: how many of the highest other classes they attack in turn, at most classes − 1 (default {B.target_classes}, as AutoAttack)")
    p.add_argument("--fab-iters", type=positive_int, default=None, help=f"FAB-T iterations per target class (default {B.fab_iters}, as AutoAttack)")
    p.add_argument("--square-queries", type=positive_int, default=None, help=f"Square's query budget per example (default {B.square_queries}, as in AutoAttack)")
    p.add_argument("--square-on", choices=SQUARE_ON, default=B.square_on,
                   help=f"which examples Square queries: all, or survivors: only those no gradient attack ({GRADIENT_LABELS}) "
                        "fooled, as AutoAttack does; the worst case is the same (top-1) and Square's own row "
                        "then counts only what it adds (labelled 'Square (on survivors)'). Square makes up to 5,000 forward passes "
                        "per example it cannot fool: on CIFAR-10 on 2 CPU cores, over 25 min for 200 examples of one model. "
                        "White-box only (default all)")
    p.add_argument("--nest-eps", action=argparse.BooleanOptionalAction, default=False,
                   help=f"several eps for the price of about one: white-box, each strong attack with passes of its own ({NESTING_LABELS}) "
                        "runs the eps in increasing order, at each eps only on the examples it left at the "
                        "smaller one (the others keep the image that fooled them there, inside the larger ball); records above the "
                        "smallest eps say \"nested\": top-1 error at least a stand-alone run's per example (docs/protocol.md#nested-eps) "
                        "(default off: every eps attacked in full)")
    p.add_argument("--seed", type=nonneg_int, default=B.seed, help="seed of the random starts and of Square's search: same seed, same examples (default 0)")
    p.add_argument("--checks", action=argparse.BooleanOptionalAction, default=True,
                   help="soundness checks (docs/protocol.md) on a run with more than one attack; with PGD among the attacks they add "
                        "PGD at eps 128/255 and PGD with twice the steps and restarts (shown by --dry-run) (default on)")
    p.add_argument("--probe-examples", type=positive_int, default=None,
                   help="run the checks' two PGD probes (unbounded, converged) on a seeded, stratified subset of this many examples "
                        "instead of all: on a model that resists they cost more than the attacks; the converged check stays paired on "
                        "those examples (docs/guides/sound-evaluation.md#probes-on-a-subset says why it stays sound) (default all)")


def suite_config(args: argparse.Namespace) -> dict:
    """The EvalConfig fields the suite flags set: the suite's attacks and its own settings
    (SUITE_SETTINGS: AutoAttack's budget and cascade), then any budget flag given."""
    attacks = args.attacks if args.attacks is not None else SUITES[args.suite]
    preset = dict(SUITE_SETTINGS.get(args.suite, {})) if args.attacks is None else {}
    preset.pop("settings", None)  # the command decides the settings (see suite_settings)
    given = {k: getattr(args, k) for k in BUDGET_FLAGS if getattr(args, k, None) is not None}
    return {"attacks": tuple(attacks), **preset, **given, "square_on": args.square_on, "seed": args.seed, "checks": args.checks,
            "probe_examples": args.probe_examples, "nest_eps": args.nest_eps}


def suite_settings(args: argparse.Namespace, default: tuple[str, ...]) -> tuple[str, ...]:
    """--settings when given, else the suite's own (autoattack: white-box), else `default`."""
    if args.settings is not None:
        return args.settings
    if args.attacks is None:
        return tuple(SUITE_SETTINGS.get(args.suite, {}).get("settings", default))
    return default


