"""Benchmarks 4 and 5 of benchmarks/attack_speed.py: the strong attacks, side by side.

4. PGD (10 steps of eps/4 from a random start, one restart, eps 4/255) against torchattacks PGD,
   adv-lib's `pgd_linf` with the same steps and step size, and the floor: 10 bare forward+backward
   passes. robustmix's PGD does one more forward (is the last point adversarial? no silent
   success), so its best possible ratio to the floor is 10 / (10 + one forward's share).
5. APGD-CE (20 iterations, to keep the ResNet run short; the default is 100) against adv-lib's
   `apgd` (loss "ce", same iterations) and the floor of 21 forward+backward passes.
adv-lib draws its random start from the global RNG: each call runs inside `torch.random.fork_rng`
with a fixed seed, as robustmix's agreement tests do (fork_rng's cost is timed with it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustmix.attacks import apgd, pgd

PGD_STEPS = 10
APGD_ITERS_BENCH = 20


def floor(model, x, y, iters):
    xa = x
    for _ in range(iters):
        xa = xa.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y, reduction="sum"), xa)
    return g


def seeded(fn):
    def call():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return fn()

    return call


def contenders(m, x, y, eps: float) -> dict[str, dict]:
    """{"pgd": {name: callable}, "apgd": {...}}; adv-lib contenders only where it is installed."""
    import torchattacks

    step = eps / 4
    ta_pgd = torchattacks.PGD(m, eps=eps, alpha=step, steps=PGD_STEPS, random_start=True)
    out = {
        "pgd": {
            "robustmix pgd": lambda: pgd(m, x, y, eps=eps, iters=PGD_STEPS, step=step, restarts=1),
            "torchattacks PGD": seeded(lambda: ta_pgd(x, y)),
            f"floor ({PGD_STEPS} fwd+bwd)": lambda: floor(m, x, y, PGD_STEPS),
        },
        "apgd": {
            "robustmix apgd-ce": lambda: apgd(m, x, y, eps=eps, loss="ce", iters=APGD_ITERS_BENCH),
            f"floor ({APGD_ITERS_BENCH + 1} fwd+bwd)": lambda: floor(m, x, y, APGD_ITERS_BENCH + 1),
        },
    }
    try:
        from adv_lib.attacks import apgd as al_apgd, pgd_linf
    except ImportError:  # optional: pip install adv-lib (needs setuptools<81 to build visdom)
        return out
    out["pgd"]["adv-lib pgd_linf"] = seeded(lambda: pgd_linf(m, x, y, eps, steps=PGD_STEPS, absolute_step_size=step))
    out["apgd"]["adv-lib apgd"] = seeded(lambda: al_apgd(m, x, y, eps, norm=float("inf"), n_iter=APGD_ITERS_BENCH, loss_function="ce"))
    return out


def rows(r: dict, ratio_row) -> list[str]:
    """The result rows of benchmarks 4 and 5 for one model (ratio_row from attack_speed)."""
    out = []
    p, a = r.get("pgd"), r.get("apgd")
    if p:
        ours = p["robustmix pgd"]
        out.append(ratio_row(f"4a. PGD {PGD_STEPS} steps vs torchattacks PGD", ours, p["torchattacks PGD"], 1.0))
        if "adv-lib pgd_linf" in p:
            out.append(ratio_row(f"4b. PGD {PGD_STEPS} steps vs adv-lib pgd_linf", ours, p["adv-lib pgd_linf"], 1.0))
        out.append(ratio_row(f"4c. PGD {PGD_STEPS} steps vs floor ({PGD_STEPS} bare fwd+bwd)", ours, p[f"floor ({PGD_STEPS} fwd+bwd)"], 0.9))
    if a:
        ours = a["robustmix apgd-ce"]
        if "adv-lib apgd" in a:
            out.append(ratio_row(f"5a. APGD-CE {APGD_ITERS_BENCH} iterations vs adv-lib apgd", ours, a["adv-lib apgd"], 1.0))
        out.append(ratio_row(f"5b. APGD-CE {APGD_ITERS_BENCH} iterations vs floor ({APGD_ITERS_BENCH + 1} bare fwd+bwd)", ours,
                             a[f"floor ({APGD_ITERS_BENCH + 1} fwd+bwd)"], 0.9))
    return out
