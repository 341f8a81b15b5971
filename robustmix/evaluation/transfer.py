"""Transfer examples: a surrogate's black-box adversarial examples, crafted once, scored on many targets.

`evaluate(targets, x, y, config, surrogate=s)` crafts the surrogate's examples in every call. A
study scores one surrogate's examples on many targets, one `evaluate` call (and one results file)
per target, so it crafts them once with `craft_transfer` and passes them on as
`evaluate(..., surrogate=s, transfer=t)`. The records are the same, bit for bit on CPU
(tests/test_shared_work.py): `craft_transfer` runs the surrogate's passes of the evaluator's plan as
`evaluate` runs them (the same chunks, memory layout, amp, shared gradient at x, stacked eps, random
numbers by example index) and keeps what they make instead of scoring it.

A Transfer is stored as safetensors with its identity as JSON metadata (`save_transfer`,
`load_transfer`); nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ..attacks import (
    ATTACKS,
    WORST,
    Crafting,
    chunking,
    eval_mode,
    logits_and_gradient,
    model_layout,
    prepare_inputs,
    standard_layout,
)
from ..data import pixels
from ..runtime import distributed, files
from ..runtime.errors import RobustmixError
from ..store.checkpoint import Checkpoint
from .config import EvalConfig, channels_last_for, place_models, resolve_batch_size
from .guards import check_evaluation
from .plan import eps_groups

FORMAT = "robustmix-transfer/1"
# EvalConfig keys a surrogate's examples do not depend on (device: like results files, examples
# are reused across devices; they are bit-identical only on one device).
# square_on: "survivors" is refused with black-box (EvalConfig.validate), so a surrogate's examples
# are always made on every example.
# nest_eps: nesting is white-box only, so a surrogate's (black-box) examples never nest.
NOT_CRAFTING = ("settings", "checks", "device", "square_on", "nest_eps")


def crafting_of(config: EvalConfig) -> dict:
    """What a surrogate's examples depend on in an EvalConfig, as JSON stores it."""
    return {k: v for k, v in json.loads(json.dumps(config.to_dict())).items() if k not in NOT_CRAFTING}


def inputs_sha256(x: torch.Tensor, y: torch.Tensor) -> str:
    """sha256 of the examples (x and y: dtype, shape and values), naming the inputs examples were crafted from."""
    digest = hashlib.sha256()
    for t in (x, y):
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


@dataclass(frozen=True)
class Transfer:
    """A surrogate's black-box examples for one set of examples and one config: per (attack, eps)
    an N×C×H×W float tensor of pixels in [0, 1] on the CPU, row i crafted from example i."""

    surrogate: str  # the name the surrogate is evaluated (and named in black-box records) under
    weights_sha256: str | None  # the surrogate's weights (its meta's weights_sha256), None when unknown
    crafting: dict  # crafting_of(config)
    inputs_sha256: str  # inputs_sha256(x, y) of the examples they were crafted from
    examples: dict[tuple[str, float], torch.Tensor]

    def check(self, surrogate: Checkpoint | None, targets: Sequence[Checkpoint], x: torch.Tensor, y: torch.Tensor,
              config: EvalConfig, world: distributed.World) -> None:
        """RobustmixError unless these are the examples `evaluate(targets, x, y, config, surrogate=surrogate)` crafts."""
        if surrogate is None or surrogate.name != self.surrogate:
            raise RobustmixError(f"transfer examples crafted by {self.surrogate!r} need that checkpoint as surrogate= "
                                 "(black-box records name it)")
        sha = (surrogate.meta or {}).get("weights_sha256")
        if sha and self.weights_sha256 and sha != self.weights_sha256:
            raise RobustmixError(f"transfer examples were crafted by other weights of {self.surrogate!r}: craft them again with craft_transfer")
        if "black-box" not in config.settings:
            raise RobustmixError("transfer examples given but black-box is not among the settings: add black-box or drop transfer=")
        if surrogate.name in {t.name for t in targets}:
            raise RobustmixError(f"the surrogate {surrogate.name!r} is also a target: evaluate it with surrogate= alone")
        if world.distributed:
            raise RobustmixError("transfer examples are not sharded across torchrun ranks: under torchrun pass surrogate= "
                                 "alone (each rank crafts its own shard)")
        now = crafting_of(config)
        differ = sorted(k for k in set(now) | set(self.crafting) if now.get(k) != self.crafting.get(k))
        if differ:
            raise RobustmixError(f"transfer examples were crafted with another config (differs in {', '.join(differ)}): "
                                 "craft them with this config")
        if self.inputs_sha256 != inputs_sha256(x, y):
            raise RobustmixError("transfer examples were crafted from other examples (x, y): craft them from these")

    def rows(self, attack: str, eps: Sequence[float], index: torch.Tensor) -> torch.Tensor:
        """k×n×C×H×W: `attack`'s examples at each eps of a stack, for the examples at `index`, on index's device."""
        at = index.cpu()
        return torch.stack([self.examples[(attack, e)].index_select(0, at) for e in eps]).to(index.device)


def craft_chunk(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: EvalConfig, index: torch.Tensor,
                per_pass: int) -> dict[tuple[str, float], torch.Tensor]:
    """Every (attack, eps) example of one prepared chunk, crafted as `evaluate.run_chunk` crafts a
    surrogate's: one shared gradient at x when an attack uses its sign (the plan's `gradient` pass),
    then each attack's `craft` per stack of at most `per_pass` eps."""
    chosen = [ATTACKS[a] for a in config.attacks if a != WORST]
    direction = logits_and_gradient(model, x, y, amp=config.amp)[1].sign() if any(a.direction for a in chosen) else None
    job = Crafting(model, x, y, config.iters, config.amp, direction=direction, budget=config.budget, index=index)
    out = {}
    for attack in chosen:
        for group in eps_groups(config.eps, per_pass):
            adv = attack.craft(job, group)
            out.update({(attack.name, e): adv[j] for j, e in enumerate(group)})
    return out


def craft_transfer(surrogate: Checkpoint, x: torch.Tensor, y: torch.Tensor, config: EvalConfig, *,
                   device: torch.device | None = None, on_batch: Callable[[int, int], None] | None = None) -> Transfer:
    """The surrogate's black-box examples at every (attack, eps) of `config`, for
    `evaluate(..., surrogate=surrogate, transfer=...)`; one process (no torchrun sharding).

    x: N×C×H×W pixels (float in [0, 1] or uint8), y: N labels; eps in config in [0, 1] units (the
    CLI's `--eps 4` is 4/255). The surrogate is moved to `device` and handed back in the mode and
    memory format it came in; the examples are kept on the CPU (N × eps × attacks images).
    """
    config.validate()
    if "black-box" not in config.settings:
        raise RobustmixError("craft_transfer crafts black-box examples: put black-box among the config's settings")
    device = device or torch.device("cpu")
    run = place_models({surrogate.name: surrogate}, config, device)[surrogate.name]
    check_evaluation([], x, y, surrogate)
    chunk, per_pass = chunking(resolve_batch_size(config, [surrogate.model], x, device), len(config.eps), config.stack_eps)
    fmt = torch.channels_last if channels_last_for(config, device) else torch.contiguous_format
    parts: dict[tuple[str, float], list[torch.Tensor]] = {}
    n_chunks = math.ceil(x.shape[0] / chunk)
    with eval_mode(surrogate.model), model_layout(surrogate.model, fmt):
        for b, (xb, yb) in enumerate(zip(x.split(chunk), y.split(chunk))):
            xb, yb = prepare_inputs(None, standard_layout(pixels(xb.to(device)), fmt), yb.to(device))
            index = torch.arange(b * chunk, b * chunk + xb.shape[0], device=device)
            for cell, adv in craft_chunk(run, xb, yb, config, index, per_pass).items():
                parts.setdefault(cell, []).append(adv.cpu())
            if on_batch is not None:
                on_batch(b + 1, n_chunks)
    examples = {cell: torch.cat(p).contiguous() for cell, p in parts.items()}
    return Transfer(surrogate.name, (surrogate.meta or {}).get("weights_sha256"), crafting_of(config), inputs_sha256(x, y), examples)


def save_transfer(path: str | Path, transfer: Transfer, extra: dict | None = None) -> Path:
    """Write a Transfer atomically as safetensors, its identity (and `extra`) as JSON metadata."""
    names = {f"x{i}": cell for i, cell in enumerate(transfer.examples)}
    meta = {"format": FORMAT, "surrogate": transfer.surrogate, "weights_sha256": transfer.weights_sha256,
            "crafting": transfer.crafting, "inputs_sha256": transfer.inputs_sha256,
            "cells": [[a, e, name] for name, (a, e) in names.items()], **(extra or {})}
    tensors = {name: transfer.examples[cell].contiguous() for name, cell in names.items()}
    return files.write_bytes(path, st_save(tensors, metadata={"robustmix": json.dumps(meta)}))


def transfer_meta(path: str | Path) -> dict | None:
    """The JSON metadata of a stored Transfer (header only), or None when the file is missing or is not one."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("robustmix", "null"))
    except Exception:  # missing, truncated or foreign: safetensors raises several exception types
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def load_transfer(path: str | Path) -> Transfer:
    """A stored Transfer; RobustmixError when the file is missing, corrupt or not one."""
    meta = transfer_meta(path)
    try:
        tensors = st_load(Path(path).read_bytes())
        examples = {(a, float(e)): tensors[name] for a, e, name in meta["cells"]}
    except Exception:
        raise RobustmixError(f"{path}: not a readable transfer examples file: delete it (it is crafted again)") from None
    return Transfer(meta["surrogate"], meta["weights_sha256"], meta["crafting"], meta["inputs_sha256"], examples)
