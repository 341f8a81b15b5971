"""`robustmix quickstart`: the whole pipeline on the embedded digits data set in under a minute.

Trains an ERM surrogate (seed 0), an ERM target (seed 1) and a mixup target (seed 1, alpha 1),
attacks the targets with FGSM and I-FGSM at eps 4/255 (white-box and black-box) and prints the
paper's Table 3 layout.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from ..data import load_dataset
from ..evaluation.evaluator import EvalConfig, evaluate
from ..reporting.tables import render_markdown
from ..reporting.text import soundness, soundness_markdown
from ..runtime.devices import resolve_device
from ..runtime.errors import RobustmixError
from ..store.checkpoint import META, provenance
from ..store.results import save_results
from ..store.runs import open_checkpoints
from ..training.config import TrainConfig, config_mismatch
from .common import EPS_HELP, eps_list, positive_int, say
from .train import train_with_progress

HELP = "train ERM and mixup CNNs on the embedded digits data, attack them and print the table (< 1 min on CPU)"

QUICKSTART_EPS = (4 / 255, 16 / 255, 32 / 255)

PLAN = (
    TrainConfig(method="erm", seed=0, role="surrogate"),
    TrainConfig(method="erm", seed=1, role="target"),
    TrainConfig(method="mixup", alpha=1.0, seed=1, role="target"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=Path, default=Path("runs"), help="where checkpoints and results go (default runs)")
    p.add_argument("--epochs", type=positive_int, default=PLAN[0].epochs, help=f"training epochs per model (default {PLAN[0].epochs})")
    p.add_argument(
        "--eps",
        type=eps_list,
        default=QUICKSTART_EPS,
        help=f"maximum L∞ perturbation, {EPS_HELP} (default 4,16,32: the paper's 4 and two larger values, "
        "since 8×8 digits have only 17 grey levels and barely move at 4/255)",
    )
    p.add_argument("--iters", type=positive_int, default=10, help="I-FGSM iterations, step eps/iters (default 10)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--overwrite", action="store_true", help="retrain even where a checkpoint with another config exists")


def existing_config(folder: Path) -> dict | None:
    try:
        config = json.loads((folder / META).read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return config if isinstance(config, dict) else None


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    device = resolve_device(args.device)
    paths = []
    for cfg in PLAN:
        cfg = cfg.with_(epochs=args.epochs, device=args.device)
        out = args.runs / cfg.run_name
        saved = existing_config(out)
        differ = config_mismatch(saved, cfg.to_dict()) if saved is not None else None
        if differ == []:
            say(f"reusing {out} (same config; training is deterministic)")
        else:
            if out.exists() and not args.overwrite:
                what = f" (differs in {', '.join(differ)})" if differ else ""
                raise RobustmixError(f"{out} exists with another config{what}: pass --overwrite to retrain it")
            meta = train_with_progress(cfg, out, overwrite=True)
            say(f"trained {out}: clean top-1 error {meta['clean_top1_err']:.2f}% in {meta['train_seconds']:.1f} s")
        paths.append(out)

    surrogate, *targets = open_checkpoints(paths, device)
    config = EvalConfig(eps=args.eps, iters=args.iters, device=args.device)
    data = load_dataset("digits")
    probes: list[dict] = []
    records = evaluate(targets, data.x_test, data.y_test, config, surrogate=surrogate, device=device, probes=probes)
    eps_tag = "-".join(f"{e * 255:g}" for e in config.eps)
    out = args.runs / "results" / f"quickstart-eps{eps_tag}-iters{config.iters}.json"
    checkpoints = {c.name: provenance(c.meta) for c in [surrogate, *targets]}
    checks, _ = soundness(records, probes)
    save_results(out, records, config={**config.to_dict(), "dataset": "digits", "device": str(device)}, checkpoints=checkpoints,
                 probes=probes, checks=[c.to_dict() for c in checks])
    print(render_markdown(records) + soundness_markdown(records, probes))
    say(f"wrote {out}; total {time.perf_counter() - started:.1f} s")
    where = "" if args.runs == Path("runs") else f" --runs {shlex.quote(str(args.runs))}"
    say(f"next: robustmix attack --eps 4 --iters 10{where}   (uses the checkpoints in {args.runs}/)")
    return 0
