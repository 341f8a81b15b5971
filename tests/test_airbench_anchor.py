"""benchmarks/airbench_anchor.py's tables from its result rows (pure functions; airbench is not needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("airbench_anchor", Path(__file__).parents[1] / "benchmarks" / "airbench_anchor.py")
anchor = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(anchor)


def row(model: str, seed: int, acc: float, seconds: list[float], curve: list[float]) -> dict:
    return {"model": model, "seed": seed, "epochs": len(seconds), "train_images": 100, "test_images": 10, "variant": "",
            "test_acc": acc, "test_acc_tta2": acc + 1, "epoch_seconds": seconds, "epoch_cpu_seconds": [2 * s for s in seconds],
            "images_seen": 100 * len(seconds), "epoch_test_acc": curve, "precision": "float32", "processor": "cpu"}


ROWS = [row("airbench94", 0, 90.0, [10.0, 10.0], [50.0, 90.0]), row("airbench94", 1, 92.0, [10.0, 10.0], [60.0, 92.0]),
        row("robustmix", 0, 91.0, [12.0, 12.0], [55.0, 91.0])]


def test_table_gives_the_seed_mean_and_the_time_ratio_to_airbench():
    lines = anchor.table(ROWS).splitlines()
    airbench, robustmix = (next(line for line in lines if line.startswith(f"| {m} ")) for m in ("airbench94", "robustmix"))
    assert "| 0,1 | 91.00 ± 1.41 |" in airbench and "1.00×, 1.00×" in airbench
    assert "| 0 | 91.00 |" in robustmix and "1.20×, 1.20×" in robustmix


def test_curves_average_each_epoch_over_the_seeds():
    lines = anchor.curves(ROWS).splitlines()
    assert lines[2] == "| 1 | 55.00 | 55.00 |"
    assert lines[3] == "| 2 | 91.00 | 91.00 |"


def test_rows_round_trip_through_the_results_file(tmp_path):
    path = tmp_path / "anchor.jsonl"
    for r in ROWS:
        anchor.append_row(path, r)
    assert anchor.read_rows(path) == ROWS
