"""The attack suites on the command line (`--suite paper|strong`, the strong attacks' budget), and
the soundness checks and verdicts that `attack` and `report` print after the tables."""

from __future__ import annotations

import argparse

from ..attacks import ATTACKS, SUITES, WORST, Budget
from ..attacks.budget import SQUARE_ON
from .common import name_list, nonneg_int, positive_int

B = Budget()
ATTACK_NAMES = (*ATTACKS, WORST)


def add_suite_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", choices=tuple(SUITES), default="paper",
                   help="paper: FGSM and I-FGSM (the paper's table); strong: paper + PGD with restarts, APGD-CE, APGD-DLR, "
                        "Square and the per-example worst case over them, the number a robustness claim should quote (default paper)")
    p.add_argument("--attacks", type=name_list(ATTACK_NAMES), default=None,
                   help=f"comma-separated, instead of --suite: {', '.join(ATTACK_NAMES)} (worst-case: right under every other attack run)")
    p.add_argument("--pgd-iters", type=positive_int, default=B.pgd_iters, help=f"PGD steps per restart, step 2.5·eps/steps (default {B.pgd_iters})")
    p.add_argument("--pgd-restarts", type=positive_int, default=B.pgd_restarts, help=f"PGD random restarts; each attacks only the examples not yet fooled (default {B.pgd_restarts})")
    p.add_argument("--apgd-iters", type=positive_int, default=B.apgd_iters, help=f"APGD-CE/APGD-DLR iterations (default {B.apgd_iters}, as in the paper and AutoAttack)")
    p.add_argument("--square-queries", type=positive_int, default=B.square_queries, help=f"Square's query budget per example (default {B.square_queries}, as in AutoAttack)")
    p.add_argument("--square-on", choices=SQUARE_ON, default=B.square_on,
                   help="which examples Square queries: all, or survivors: only those no gradient attack (FGSM, I-FGSM, PGD, "
                        "APGD-CE, APGD-DLR) fooled, as AutoAttack does; the worst case is the same (top-1) and Square's own row "
                        "then counts only what it adds (labelled 'Square (on survivors)'). Square makes up to 5,000 forward passes "
                        "per example it cannot fool: on CIFAR-10 on 2 CPU cores, over 25 min for 200 examples of one model. "
                        "White-box only (default all)")
    p.add_argument("--seed", type=nonneg_int, default=B.seed, help="seed of the random starts and of Square's search: same seed, same examples (default 0)")
    p.add_argument("--checks", action=argparse.BooleanOptionalAction, default=True,
                   help="soundness checks (docs/protocol.md) on a run with more than one attack; with PGD among the attacks they add "
                        "PGD at eps 128/255 and PGD with twice the steps and restarts (shown by --dry-run) (default on)")


def suite_config(args: argparse.Namespace) -> dict:
    """The EvalConfig fields the suite flags set."""
    attacks = args.attacks if args.attacks is not None else SUITES[args.suite]
    return {"attacks": tuple(attacks), "pgd_iters": args.pgd_iters, "pgd_restarts": args.pgd_restarts, "apgd_iters": args.apgd_iters,
            "square_queries": args.square_queries, "square_on": args.square_on, "seed": args.seed, "checks": args.checks}


