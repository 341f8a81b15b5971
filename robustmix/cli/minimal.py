"""`robustmix attack --minimal`: minimal-perturbation robustness (robustmix.evaluation.minimal). Per
example, the smallest L∞ eps (0–255 scale) at which the chosen attacks fool it, to a stated
precision; the records hold every example's eps*, and the table gives each method's median eps*
with its seed-level interval and the error read off at each --eps (the whole curve from one run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.minimal import render_minimal
from ..evaluation.minimal import SEARCH_ATTACKS, Search, minimal_records, search_plan
from ..store.checkpoint import provenance
from ..store.results import save_results
from .common import bar, name_list, positive_float, say, writable_path

S = Search()


def add_minimal_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minimal", action="store_true",
                   help="minimal-perturbation robustness: per example the smallest eps (0–255 scale) at which --minimal-attacks fool "
                        "it, by bisection on a grid of --precision up to --eps-max (FAB-T, a minimal-norm attack, gives an upper bound "
                        "first when named); records each example's eps*, prints the median eps* per method and the error read off at "
                        "each --eps; white-box, the budget flags apply")
    p.add_argument("--eps-max", type=positive_float, default=None,
                   help=f"--minimal: the largest eps searched, 0–255 scale (default {S.eps_max * 255:g}); beyond it an example is "
                        "'robust within the range'")
    p.add_argument("--precision", type=positive_float, default=None,
                   help=f"--minimal: the grid step of the search, 0–255 scale (default {S.precision * 255:g}): eps* is exact to it")
    p.add_argument("--minimal-attacks", type=name_list(SEARCH_ATTACKS), default=None,
                   help=f"--minimal: comma-separated attacks the search runs, in order, each on the examples the ones before it left: "
                        f"{', '.join(SEARCH_ATTACKS)} (default {','.join(S.attacks)})")


def search_of(args: argparse.Namespace) -> Search:
    """The search the flags ask for (validated: one-line errors)."""
    search = Search(attacks=tuple(args.minimal_attacks or S.attacks),
                    eps_max=S.eps_max if args.eps_max is None else args.eps_max / 255,
                    precision=S.precision if args.precision is None else args.precision / 255)
    search.validate()
    return search


def minimal_plan(search: Search, budget, n_examples: int) -> str:
    lines = [f"minimal-perturbation search over (0, {search.eps_max * 255:g}]/255 in steps of {search.precision * 255:g}/255: "
             f"at most {search.rounds} round(s) of {', '.join(a for a in search.attacks if a != 'fab-t') or 'no bounded attack'}"]
    f = b = 1  # the clean forward
    for what, fwd, bwd in search_plan(search, budget):
        lines.append(f"  {what}: {fwd} fwd {bwd} bwd per example, at most")
        f, b = f + fwd, b + bwd
    lines.append(f"per example: {f} forward + {b} backward passes at most, {n_examples} examples "
                 "(each round attacks only the examples still searching)")
    return "\n".join(lines)


def run_minimal(args: argparse.Namespace, config, targets, x, y, data, device) -> int:
    """Run the search on every target, write the records, print the table."""
    search = search_of(args)
    if args.dry_run:
        print(minimal_plan(search, config.budget, x.shape[0]) + f"\n(dry run on {device}: nothing attacked, nothing written)")
        return 0
    out = args.out or Path("runs") / "results" / f"attack-minimal-max{search.eps_max * 255:g}.json"
    writable_path(out)
    subset = f" (a stratified subset of {data.y_test.numel()}, seed 0)" if args.examples else ""
    say(f"minimal perturbation of {x.shape[0]} test examples of {data.name}{subset}")
    progress = bar(total=0, desc="minimal")

    def on_batch(done: int, total: int) -> None:
        progress.total = total
        progress.update(1)

    try:
        batch = config.batch_size if isinstance(config.batch_size, int) else 500
        records = minimal_records(targets, x, y, search, config.budget, batch_size=batch, amp=config.amp, device=device,
                                  on_batch=on_batch)
    finally:
        progress.close()
    setup = {**config.to_dict(), "minimal": search.to_dict(), "dataset": targets[0].meta["dataset"], "examples": args.examples,
             "device": str(device)}
    save_results(out, records, config=setup, checkpoints={c.name: provenance(c.meta) for c in targets})
    print(render_minimal(records, tuple(round(e * 255, 6) for e in config.eps)))
    say(f"wrote {out}")
    return 0
