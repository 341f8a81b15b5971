"""Running `robustmix study` in tests: the committed tiny digits spec, at one torch thread (the same
numbers run after run), a snapshot of what a rerun must leave byte for byte, and what two runs of a
study must share (`comparable`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import torch

from robustmix.cli import main

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "benchmarks" / "study-digits.toml"
CIFAR = ROOT / "benchmarks" / "study-cifar10.toml"

# The head of the small study specs the tests write: digits, a small CNN, 4 epochs on the CPU.
DIGITS_HEAD = """
[data]
dataset = "digits"
[train]
model = "cnn"
epochs = 4
device = "cpu"
"""


def run_study(*argv) -> int:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a fixed thread count: the same numbers run after run (and faster for these tiny models)
    try:
        return main(["study", *map(str, argv)])
    finally:
        torch.set_num_threads(threads)


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "results").glob("*.json"))
            + sorted((out / "models").glob("*/model.safetensors")) + sorted((out / "models").glob("*/meta.json"))}


# --- comparing two runs of one study (tests/test_study_cluster.py) ---------------------------------
# What legitimately differs between two runs of the same study (one process against model jobs, or a
# job killed and resumed), and why; everything else must be byte for byte the same.
WALL = "wall-clock time: when and how fast it ran, never what it computed"
WHERE = "the host and scheduler job that ran it (provenance)"
META_VARIES = {"train_seconds": WALL, "train_images_per_second": WALL, "hostname": WHERE, "job_id": WHERE,
               "resumed_at_epoch": "the epoch a killed or preempted job resumed from (its weights are the same)"}
HISTORY_VARIES = ("seconds", "images_per_second")  # per-epoch wall time, in meta.json's history and log.csv
RECORD_VARIES = ("seconds", "hostname", "job_id")  # where and how long an attack, crafting or probe ran
REPORT_VARIES = {"command": "names the study folder and the executor",
                 "Total compute": WALL, "compute: training": WALL, "Train s per seed": WALL}


def _strip(d: dict, keys) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def _markdown_masked(text: str) -> str:
    """README.md without the lines and cells of REPORT_VARIES: the command line, the compute sentences and
    the models table's "Train s per seed" column (each model's training seconds), found by its header."""
    lines, column = [], None
    for line in text.splitlines():
        if line.startswith("- command:") or line.startswith("- compute: training"):
            line = line.split(":")[0] + ": (varies)"
        line = re.sub(r"Total compute .*", "Total compute (varies)", line)
        cells = line.split("|")
        if line.startswith("|") and "Train s per seed" in [c.strip() for c in cells]:
            column = [c.strip() for c in cells].index("Train s per seed")
        elif column is not None and line.startswith("|") and not line.startswith("|-"):
            cells[column] = " (varies) "
            line = "|".join(cells)
        elif not line.startswith("|"):
            column = None
        lines.append(line)
    return "\n".join(lines)


def comparable(out: Path) -> dict[str, object]:
    """Every file of a study folder that two runs must share, as what must be equal: bytes, or for the
    files that also record where and how long they ran, their content without those fields (META_VARIES,
    HISTORY_VARIES, RECORD_VARIES, REPORT_VARIES). Not compared: report.html (rendered from the same blocks
    as README.md, compared masked) and DIR/jobs (the jobs' logs and pickles, written by executors only)."""
    got: dict[str, object] = {}
    for p in sorted(out.rglob("*")):
        rel = str(p.relative_to(out))
        if not p.is_file() or rel.startswith("jobs/") or rel == "report.html":
            continue
        if p.name == "meta.json":
            meta = json.loads(p.read_text())
            meta["history"] = [_strip(r, HISTORY_VARIES) for r in meta["history"]]
            got[rel] = _strip(meta, META_VARIES)
        elif p.name == "log.csv":
            got[rel] = pd.read_csv(p).drop(columns=list(HISTORY_VARIES)).to_csv(index=False)
        elif rel.startswith("results/") and p.suffix == ".json" and not p.name.startswith("transfer-"):
            doc = json.loads(p.read_text())
            got[rel] = {**doc, "config": _strip(doc["config"], RECORD_VARIES)}
        elif rel.startswith("results/transfer-") or rel.startswith("data/probes/") or rel == "data/probes.json":
            got[rel] = _strip(json.loads(p.read_text()), RECORD_VARIES)
        elif rel == "data/models.csv":
            got[rel] = pd.read_csv(p).drop(columns=["Train s per seed"]).to_csv(index=False)
        elif rel == "study.json":
            doc = json.loads(p.read_text())
            models = [_strip(m, ("Train s per seed",)) for m in doc["numbers"]["models"]]
            got[rel] = {**_strip(doc, ("command", "timing")), "numbers": {**doc["numbers"], "models": models}}
        elif rel == "README.md":
            got[rel] = _markdown_masked(p.read_text())
        else:
            got[rel] = p.read_bytes()
    return got
