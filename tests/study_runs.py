"""Running `robustmix study` in tests: the committed tiny digits spec, at one torch thread (the same
numbers run after run), and a snapshot of what a rerun must leave byte for byte."""

from __future__ import annotations

from pathlib import Path

import torch

from robustmix.cli import main

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "benchmarks" / "study-digits.toml"
CIFAR = ROOT / "benchmarks" / "study-cifar10.toml"


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
