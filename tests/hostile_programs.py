"""Hostile TorchScript and torch.export files for the import tests, made from a real exported model.

Each payload, if it ever ran, would create the marker file `PWNED` (tests/hostile.py) in the current
folder, so a test can see whether anything ran. The .pt2 variants rewrite one part of a genuine
archive with zipfile; everything else stays as torch.export.save wrote it.
"""

import io
import json
import zipfile
from typing import Tuple

import torch
from torch import nn

from hostile import MARKER, Payload

RUN_MARKER = f"__import__('builtins').open('{MARKER}', 'w')"


def hostile_pickle_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"x": torch.zeros(1), "y": Payload()}, buf)
    return buf.getvalue()


def rewrite_pt2(src, dst, *, json_edit=None, replace: dict | None = None, add: dict | None = None) -> None:
    """Copy a .pt2, editing models/model.json (json_edit(dict)), replacing or adding members (relative names)."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as out:
        root = z.namelist()[0].split("/")[0]
        for name in z.namelist():
            rel = name.split("/", 1)[1]
            data = z.read(name)
            if rel == "models/model.json" and json_edit is not None:
                program = json.loads(data)
                json_edit(program)
                data = json.dumps(program).encode()
            if replace and rel in replace:
                data = replace[rel]
            out.writestr(name, data)
        for rel, data in (add or {}).items():
            out.writestr(f"{root}/{rel}", data)


def pickled_weight(src, dst) -> None:
    """The first weight marked use_pickle and replaced by a pickle carrying the payload."""
    with zipfile.ZipFile(src) as z:
        root = z.namelist()[0].split("/")[0]
        config = json.loads(z.read(f"{root}/data/weights/model_weights_config.json"))
    first = next(iter(config["config"]))
    config["config"][first]["use_pickle"] = True
    path = config["config"][first]["path_name"]
    rewrite_pt2(src, dst, replace={"data/weights/model_weights_config.json": json.dumps(config).encode(),
                                   f"data/weights/{path}": hostile_pickle_bytes()})


def _first_node(program) -> dict:
    return program["graph_module"]["graph"]["nodes"][0]


def _set_target(program):
    _first_node(program)["target"] = "torch.os.system"


def _set_expr(program):
    program["graph_module"]["graph"]["sym_int_values"]["s0"] = {"as_expr": {"expr_str": RUN_MARKER, "hint": None}}


def _set_arg_name(program):
    for call in program["graph_module"]["module_call_graph"]:
        if call["fqn"] == "":
            call["signature"]["forward_arg_names"] = [f"x): {RUN_MARKER}\n    def f(x"]


def _set_param_name(program):
    for spec in program["graph_module"]["signature"]["input_specs"]:
        if "parameter" in spec:
            spec["parameter"]["parameter_name"] = f'a"); {RUN_MARKER}; getattr(self, "b'
            return


# name -> how the archive is made hostile (each refused before torch sees it)
REFUSED_PT2 = {
    "pickled weight": lambda src, dst: pickled_weight(src, dst),
    "opaque object": lambda src, dst: rewrite_pt2(src, dst, add={"data/constants/opaque_obj_0": hostile_pickle_bytes()}),
    "os.system target": lambda src, dst: rewrite_pt2(src, dst, json_edit=_set_target),
    "code in a shape expression": lambda src, dst: rewrite_pt2(src, dst, json_edit=_set_expr),
    "code in an argument name": lambda src, dst: rewrite_pt2(src, dst, json_edit=_set_arg_name),
    "code in a parameter name": lambda src, dst: rewrite_pt2(src, dst, json_edit=_set_param_name),
    "compiled library": lambda src, dst: rewrite_pt2(src, dst, add={"data/aotinductor/model/model.so": b"\x7fELF"}),
}

# name -> a hostile archive that imports fine because the part is never handed to torch
NEUTRALISED_PT2 = {
    "hostile sample inputs": lambda src, dst: rewrite_pt2(src, dst, replace={"data/sample_inputs/model.pt": hostile_pickle_bytes()}),
    "code in guards": lambda src, dst: rewrite_pt2(src, dst, json_edit=lambda p: p.__setitem__("guards_code", [RUN_MARKER])),
}


class SetState(nn.Module):
    """A scripted module whose __setstate__ (TorchScript code) runs inside torch.jit.load."""

    def __init__(self):
        super().__init__()
        self.w = torch.zeros(64, 10)

    def forward(self, x):
        return x.flatten(1) @ self.w

    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]):
        self.w = state[0]
        self.training = state[1]


class ReadsFile(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        t = torch.from_file("/etc/hostname", size=1, dtype=torch.uint8)
        return self.head(x.flatten(1)) + t.float().sum() * 0


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(x.flatten(1))


def saving_hook(module: nn.Module, inputs: Tuple[torch.Tensor]) -> None:
    torch.save(inputs[0], "leak.pt")


def with_saving_hook() -> nn.Module:
    """A module whose own (root) forward pre-hook writes its input to a file: scripted with it."""
    m = Small()
    m.register_forward_pre_hook(saving_hook)
    return m


def torchscript_with_hostile_pickle(src, dst) -> None:
    """A TorchScript archive whose data.pkl is replaced by a Python pickle carrying the payload."""
    import pickle

    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as out:
        for name in z.namelist():
            data = pickle.dumps(Payload(), protocol=2) if name.endswith("/data.pkl") else z.read(name)
            out.writestr(name, data)
