"""Programs brought from elsewhere: TorchScript files and `torch.export` archives (.pt2), read safely.

Neither format is plain data. What each would run, and what we do about it:

torch.export (.pt2, a zip). `torch.export.load` (torch 2.14) unpickles with `weights_only=False`
any weight or constant marked `use_pickle`, calls `pickle.loads` on "opaque" constants, retries the
sample inputs with `weights_only=False` when `weights_only=True` fails, `sympy.sympify`s (an `eval`)
every symbolic-shape expression, `exec`s the program's `guards_code`, resolves each node's target
by `getattr` from `torch`, `operator` or `math` (so `torch.os.system` would be a valid target),
and pastes module paths and argument names into the Python source of the module it generates.
We never hand it the user's file. `sanitized_pt2` reads the zip with `zipfile` and `json` only,
refuses anything outside a strict allow-list (raw tensor payloads, JSON configs, one program),
and writes a fresh archive that torch.export.load can read without running anything foreign:
no pickled payloads (sample inputs replaced by an empty record, node metadata dropped,
`guards_code` emptied); every target an `aten` operator (or `operator.getitem`) outside the
operators that read or write files; every shape expression a sympy term made only of symbols,
numbers, arithmetic and sympy's own constructors; every other string free of quotes, brackets,
semicolons and newlines; inputs and outputs exactly one tensor each. The checkpoint folder
stores this sanitized archive, and it is checked again on every load.

TorchScript (a zip). `torch.jit.load` unpickles `data.pkl`/`constants.pkl` with TorchScript's own
C++ unpickler, which resolves only tensor storages, torch's own rebuild helpers and the
`__torch__` classes compiled from the archive's code: it never imports or calls Python (so a
pickle payload like tests/hostile.py's fails to load). The archive's code, though, is a program,
compiled by TorchScript and run by its interpreter; PyTorch's SECURITY.md says to treat TorchScript
"the same way as locally executable code from an unknown source". The only archive code that runs
while loading is a class's `__setstate__`, so we refuse archives that define one (searched in the
code before loading), and after loading we walk the forward graph and every scripted forward hook
(calls inlined) and refuse any operator outside `aten::`/`prim::` or among the ones that read or
write files or call Python.
What remains is the risk PyTorch names: a bug in TorchScript's own deserializer. Import
TorchScript from people you trust; prefer `torch.export` or a state dict.
"""

from __future__ import annotations

import io
import json
import re
import tokenize
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..runtime.errors import RobustmixError

# Operators that touch the file system or call back into Python: refused in both formats.
DENIED_OPS = {"aten::from_file", "aten::save", "prim::PythonOp", "prim::IgnoredPythonOp"}
PROGRAM_ROOT = "program"  # the root folder inside the sanitized .pt2 we write

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FQN = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\Z")
_PLAIN = re.compile(r"[A-Za-z0-9_.:+\-/ ]*\Z")  # any other string: no quotes, brackets, ';' or newlines
_SYMBOL = re.compile(r"[a-z]+[0-9]+\Z")
# sympy's constructors (srepr) and torch's shape functions (torch/_export/serde/serialize.py)
_SYMPY_NAMES = {
    "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Max", "Min", "Mod", "Abs", "Eq", "Ne", "Lt",
    "Le", "Gt", "Ge", "And", "Or", "Not", "true", "false", "True", "False", "positive", "integer", "nonnegative",
    "real", "finite", "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt",
    "CeilDiv", "LShift", "RShift", "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt",
    "RoundDecimal", "ToFloat", "FloatPow", "PowByNatural", "IntTrueDiv", "FloatTrueDiv", "OpaqueUnaryFn_sqrt",
}
_PT2_MEMBERS = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json"
    r"|data/weights/model_weights_config\.json|data/weights/weight_[0-9]+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_[0-9]+|data/sample_inputs/model\.pt)\Z"
)


def _refuse(path: str, why: str, fix: str = "export it again with torch.export.save from a plain nn.Module") -> RobustmixError:
    return RobustmixError(f"{path}: refused, {why} (nothing was run): {fix}")


def _zip(blob: bytes, path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(blob))
    except zipfile.BadZipFile:
        raise RobustmixError(f"{path}: not a zip archive, so neither a TorchScript file nor a torch.export .pt2: check the file") from None


# --- torch.export ---------------------------------------------------------------------------------


def _check_expr(expr: str, path: str) -> None:
    """A shape expression must be a sympy term of symbols, numbers and sympy's constructors only."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(expr).readline))
    except (tokenize.TokenError, SyntaxError):
        raise _refuse(path, f"unreadable shape expression {expr[:60]!r}") from None
    for t in tokens:
        ok = (
            (t.type == tokenize.NAME and (t.string in _SYMPY_NAMES or _SYMBOL.match(t.string)))
            or t.type in (tokenize.NUMBER, tokenize.NEWLINE, tokenize.ENDMARKER)
            or (t.type == tokenize.OP and t.string in {"(", ")", ",", "=", "+", "-", "*", "/", "**", "%"})
            or (t.type == tokenize.STRING and _SYMBOL.match(t.string.strip("'\"")) and t.string[0] == t.string[-1] and t.string[0] in "'\"" and len(t.string) > 2)
        )
        if not ok:
            raise _refuse(path, f"shape expression {expr[:60]!r} holds {t.string[:20]!r}, which is not plain arithmetic")


def _check_target(target: str, path: str) -> None:
    if target == "_operator.getitem":
        return
    parts = target.split(".")
    if len(parts) not in (4, 5) or parts[:3] != ["torch", "ops", "aten"] or not all(_IDENT.match(p) for p in parts[3:]):
        raise _refuse(path, f"the program calls {target[:80]!r}; only aten operators are accepted")
    if f"aten::{parts[3]}" in DENIED_OPS:
        raise _refuse(path, f"the program calls {target!r}, which reads or writes files")


def _walk(node, path: str, key: str = "") -> None:
    """Every string in the program JSON, by the field it sits in."""
    if isinstance(node, dict):
        for k, v in node.items():
            if not isinstance(k, str) or not _PLAIN.match(k):
                raise _refuse(path, f"unexpected field name {str(k)[:40]!r} in the program")
            _walk(v, path, k)
    elif isinstance(node, list):
        for v in node:
            _walk(v, path, key)
    elif isinstance(node, str):
        if key == "expr_str":
            _check_expr(node, path)
        elif key == "target":
            _check_target(node, path)
        elif key in ("in_spec", "out_spec"):
            pass  # checked as a whole in _check_io
        elif not _PLAIN.match(node):
            raise _refuse(path, f"field {key!r} holds {node[:40]!r}, which is not a plain name")


def _check_io(program: dict, path: str) -> None:
    """One positional tensor in, one tensor out: the only call signature an image classifier needs."""
    leaf = {"type": None, "context": None, "children_spec": []}
    one_in = {"type": "builtins.tuple", "context": "null", "children_spec": [
        {"type": "builtins.tuple", "context": "null", "children_spec": [leaf]},
        {"type": "builtins.dict", "context": "[]", "children_spec": []}]}
    for call in program["graph_module"]["module_call_graph"]:
        sig = call.get("signature")
        if call.get("fqn") != "" and sig is None:
            continue
        if call.get("fqn") != "" or sig is None:
            raise _refuse(path, "the program keeps submodule call signatures (preserve_module_call_signature)")
        for name in sig.get("forward_arg_names") or []:
            if not _IDENT.match(name):
                raise _refuse(path, f"argument name {name[:40]!r} is not an identifier")
        try:
            ins, outs = json.loads(sig["in_spec"]), json.loads(sig["out_spec"])
        except (KeyError, TypeError, json.JSONDecodeError):
            raise _refuse(path, "unreadable input/output structure") from None
        if ins != [1, one_in] or outs not in ([1, leaf], [1, {"type": "builtins.tuple", "context": "null", "children_spec": [leaf]}]):
            raise _refuse(path, "the program does not take one image tensor and return one logits tensor",
                          "export a module whose forward(x) returns the logits")


def _check_payloads(config: dict, path: str, prefix: str) -> None:
    for fqn, entry in (config.get("config") or {}).items():
        if not _FQN.match(fqn):
            raise _refuse(path, f"weight name {fqn[:40]!r} is not a module path")
        if entry.get("use_pickle") or not re.fullmatch(prefix + r"[0-9]+", str(entry.get("path_name", ""))):
            raise _refuse(path, f"{fqn!r} is stored as a pickle or a custom object, not a raw tensor")


def sanitized_pt2(blob: bytes, path: str) -> bytes:
    """A torch.export archive rebuilt from its checked parts (see the module docstring). Raises
    RobustmixError naming the first thing refused; reads the input with zipfile and json only."""
    z = _zip(blob, path)
    names = [i.filename for i in z.infolist() if not i.is_dir()]
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise _refuse(path, "not a torch.export archive (one root folder expected)")
    members = {n.split("/", 1)[1]: n for n in names}
    if "models/model.json" not in members:
        raise _refuse(path, "not a torch.export archive (no models/model.json)", "save it with torch.export.save")
    for rel in members:
        if not _PT2_MEMBERS.match(rel):
            raise _refuse(path, f"the archive holds {rel[:60]!r} (pickled, compiled or unknown content)")
    try:
        program = json.loads(z.read(members["models/model.json"]))
        configs = {k: json.loads(z.read(members[k])) if k in members else {} for k in
                   ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json")}
    except (json.JSONDecodeError, UnicodeDecodeError, zipfile.BadZipFile, OSError) as e:
        raise _refuse(path, f"unreadable program ({e.__class__.__name__})") from None
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise _refuse(path, "not a torch.export program")
    _check_payloads(configs["data/weights/model_weights_config.json"], path, "weight_")
    _check_payloads(configs["data/constants/model_constants_config.json"], path, "tensor_")
    for node in program["graph_module"].get("graph", {}).get("nodes", []):
        node["metadata"] = {}  # stack traces and module paths: text only, never needed to run
    program["guards_code"] = []  # Python source exec'ed by ep.module(): shape assertions only
    graph = program["graph_module"].get("graph", {})
    if graph.get("custom_obj_values"):
        raise _refuse(path, "the program holds custom objects")
    for sym in program.get("range_constraints") or {}:
        if not _SYMBOL.match(sym):
            raise _refuse(path, f"unexpected shape symbol {sym[:40]!r}")
    _check_io(program, path)
    _walk(program, path)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as w:
        for rel, name in sorted(members.items()):
            if rel == "models/model.json":
                data = json.dumps(program).encode()
            elif rel.startswith("data/sample_inputs/"):
                data = b""  # a torch.save pickle; torch.export.load reads empty bytes as "none"
            else:
                data = z.read(name)
            w.writestr(f"{PROGRAM_ROOT}/{rel}", data)
    return out.getvalue()


class ExportedNet(nn.Module):
    """An exported program as a module. Its graph fixed batch-norm and dropout behaviour when it was
    exported (in eval mode, or the import refuses it), so train()/eval() only set the flag here."""

    def __init__(self, program: nn.Module):
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> "ExportedNet":
        self.training = mode  # ep.module().eval() raises NotImplementedError in torch 2.14
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def load_pt2(blob: bytes, path: str) -> nn.Module:
    """The module of a torch.export archive, after sanitizing it (see the module docstring)."""
    clean = sanitized_pt2(blob, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(io.BytesIO(clean))
            return ExportedNet(program.module())
    except Exception as e:  # deserialization raises many types on inconsistent programs
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise RobustmixError(f"{path}: torch.export could not load the program ({first[:120]}): export it again with this torch version") from None


# --- TorchScript ----------------------------------------------------------------------------------


def check_torchscript_archive(blob: bytes, path: str) -> None:
    """Before loading: a TorchScript zip (code/ and data.pkl), with no __setstate__ in its code."""
    z = _zip(blob, path)
    names = [i.filename for i in z.infolist()]
    if not any(n.endswith("/data.pkl") for n in names) or not any("/code/" in n for n in names):
        raise RobustmixError(f"{path}: not a TorchScript archive (no code/ and data.pkl): save it with torch.jit.save, "
                             "or give a .pt2 from torch.export.save")
    for n in names:
        if "/code/" in n and n.endswith(".py") and re.search(rb"def\s+__setstate__\s*\(", z.read(n)):
            raise _refuse(path, f"its code defines __setstate__ ({n.split('/code/', 1)[1]}), which would run while loading",
                          "script the model without a custom __setstate__, or export it with torch.export")


def _graph_ops(block) -> set[str]:
    ops = set()
    for node in block.nodes():
        ops.add(node.kind())
        for sub in node.blocks():
            ops |= _graph_ops(sub)
    return ops


def load_torchscript(blob: bytes, path: str) -> nn.Module:
    """A TorchScript module (on the CPU), after the checks in the module docstring."""
    check_torchscript_archive(blob, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice: not for the user's terminal
            module = torch.jit.load(io.BytesIO(blob), map_location="cpu")
    except Exception as e:  # the C++ deserializer raises RuntimeError with long messages
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise RobustmixError(f"{path}: TorchScript could not load it ({first[:120]}): save it again with torch.jit.save") from None
    if not hasattr(module, "forward"):
        raise RobustmixError(f"{path}: the TorchScript module has no forward method: script the classifier itself")
    ops = _graph_ops(module.forward.inlined_graph)
    for m in module.modules():  # scripted forward hooks run around forward, outside its graph
        for hook in m._c._get_forward_pre_hooks() + m._c._get_forward_hooks():
            graph = hook.graph.copy()
            torch._C._jit_pass_inline(graph)
            ops |= _graph_ops(graph)
    bad = sorted(op for op in ops if op in DENIED_OPS or op.split("::")[0] not in ("aten", "prim"))
    if bad:
        raise _refuse(path, f"its forward calls {', '.join(bad[:3])}; only aten and prim operators that touch no files are accepted",
                      "script or export the plain classifier")
    return module


KINDS = {"torchscript": load_torchscript, "torch.export": load_pt2}


def program_kind(blob: bytes, path: str) -> str:
    """'torch.export' for a .pt2 archive (models/model.json inside), else 'torchscript'."""
    names = [i.filename for i in _zip(blob, path).infolist()]
    return "torch.export" if any(n.endswith("/models/model.json") for n in names) else "torchscript"


def read_program(path: str | Path) -> tuple[bytes, str]:
    try:
        return Path(path).read_bytes(), str(path)
    except OSError as e:
        raise RobustmixError(f"{path}: unreadable ({e.strerror}): check the path and its permissions") from None
