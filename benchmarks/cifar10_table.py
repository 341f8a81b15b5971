"""The tables of reports/cifar10-cpu.md from the checkpoints `benchmarks/cifar10_cpu.sh` wrote.

For each run folder (meta.json + log.csv): method, recipe, epochs, clean top-1/top-5 error on the
whole test split, final training accuracy, the processor, and three speeds:

- `train_seconds` as recorded: wall time, which counts every second the process was stopped or
  shared the CPU (these runs were paused with SIGSTOP for CI and measurements);
- the idle speed: the median images/s of the fastest third of the epochs (an epoch that shared the
  CPU or was paused is slower, never faster), and the training time it implies for the whole run.

Then the per-epoch test error of every run. Markdown on stdout.

    python benchmarks/cifar10_table.py /work/runs14/{erm,mixup}-fast-cifar{,-3x}-s0
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import pandas as pd

from robustmix.reporting.tables import markdown


def idle_speed(log: pd.DataFrame) -> float:
    """Median images/s over the fastest third of the epochs (at least one)."""
    fastest = log["images_per_second"].sort_values(ascending=False)
    return float(statistics.median(fastest.iloc[: max(1, len(fastest) // 3)]))


def summary(folder: Path) -> tuple[dict | None, pd.DataFrame]:
    """(the run's row, or None while it is unfinished; its test error per epoch)."""
    if not (folder / "log.csv").is_file():
        raise SystemExit(f"cifar10_table: {folder} has no log.csv: give folders `robustmix train` wrote")
    log = pd.read_csv(folder / "log.csv")
    if not (folder / "meta.json").is_file():
        return None, log.set_index("epoch")["test_err"].rename(f"{folder.name} (running)")
    meta = json.loads((folder / "meta.json").read_text())
    speed = idle_speed(log)
    images = meta["data"]["train_examples"] * meta["epochs"]
    method = meta["method"] + (f" (α = {meta['alpha']:g})" if meta["method"] != "erm" else "")
    row = {
        "run": folder.name, "method": method, "recipe": f"{meta['recipe']} ({meta['epochs']} epochs)",
        "test error (top-1)": f"{meta['clean_top1_err']:.2f} %", "top-5": f"{meta['clean_top5_err']:.2f} %",
        "final train acc.": f"{log['train_acc'].iloc[-1]:.1f} %",
        "train_seconds (wall, as recorded)": f"{meta['train_seconds']:,.0f} s",
        "idle images/s": f"{speed:.0f}", "training time at the idle speed": f"{images / speed / 60:.0f} min",
        "processor": meta["processor"], "amp": meta["amp"],
    }
    return row, log.set_index("epoch")["test_err"].rename(folder.name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="+", help="checkpoint folders (meta.json and log.csv)")
    args = p.parse_args()
    rows, curves = zip(*(summary(f) for f in args.runs))
    done = [r for r in rows if r is not None]
    if done:
        print(markdown(pd.DataFrame(done), left=("run", "method", "recipe", "processor", "amp")))
    print()
    errors = pd.concat(curves, axis=1)  # a row per epoch, a column per run: 30 epochs read down, not across
    errors.index = errors.index.astype(int)
    print("Test error (top-1, %) after each epoch:\n")
    print(markdown(errors.reset_index(names="epoch"), digits=2, left=()))


if __name__ == "__main__":
    main()
