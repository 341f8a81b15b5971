"""Per-epoch resume state: one safetensors file (tensors) whose header carries the JSON rest.

Tensors: the model's state (`model.*`), the optimiser's per-parameter state (`opt.<i>.<name>`), the
lookahead average if the run has one (`lookahead.*`), the weight average's (EMA) state if the run has
one (`ema.*`), the shuffling/mixing generator's and torch's
global RNG states (`rng.*`). JSON (in the safetensors metadata): format, epoch, config, optimiser
param groups, scheduler state, history. One file written atomically, so a run killed at any moment
leaves the previous epoch's state intact. Never pickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from ..runtime import files
from ..runtime.errors import RobustmixError

FORMAT = "robustmix-resume/1"


def save_state(path: str | Path, *, model, opt, sched, gen: torch.Generator, epoch: int, config: dict,
               history: list[dict], lookahead=None, ema=None) -> Path:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if lookahead is not None:
        tensors.update({f"lookahead.{k}": v for k, v in lookahead.tensors().items()})
    if ema is not None:
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    opt_state = opt.state_dict()
    for i, st in opt_state["state"].items():
        for name, v in st.items():
            if not torch.is_tensor(v):
                v = torch.tensor(v)
            tensors[f"opt.{i}.{name}"] = v.detach().cpu().contiguous()
    tensors["rng.gen"] = gen.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    info = {"format": FORMAT, "epoch": epoch, "config": config, "param_groups": opt_state["param_groups"],
            "scheduler": sched.state_dict(), "history": history}
    return files.write_bytes(path, st_save(tensors, metadata={"format": FORMAT, "json": json.dumps(info)}))


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, info) of a resume file; a clear error if it is not one."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        info = json.loads(meta["json"])
    except Exception as e:  # safetensors/json raise several types on damaged files
        raise RobustmixError(f"{path}: unreadable resume state ({e.__class__.__name__}): delete it and pass --overwrite") from None
    if info.get("format") != FORMAT:
        raise RobustmixError(f"{path}: not robustmix resume state: delete it and pass --overwrite")
    return tensors, info


def restore_state(tensors: dict, info: dict, *, model, opt, sched, gen: torch.Generator, lookahead=None, ema=None) -> None:
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    if ema is not None:
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}, strict=True)
    if lookahead is not None:
        device = next(model.parameters()).device
        lookahead.load({k[10:]: v for k, v in tensors.items() if k.startswith("lookahead.")}, device)
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    sched.load_state_dict(info["scheduler"])
    gen.set_state(tensors["rng.gen"])
    torch.set_rng_state(tensors["rng.torch"])
