"""The house rules a reader relies on: the folders are the pipeline's stages and each imports only
the stages its docstring names (all earlier in the package's list); no import circle among
robustmix's modules; no module longer than a reader can take in one sitting; no folder with more
modules than a reader can survey."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "robustmix"
MAX_LINES = 360  # "about 350 lines"
MAX_MODULES = 12  # "about a dozen" modules at a folder's top level


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph(mods: dict[str, Path], *, deferred: bool = False) -> dict[str, set[str]]:
    """Imports between robustmix modules: module-level ones, and with `deferred` also those inside
    functions. `from . import files` is an edge to the module `files`, not to the package;
    `from . import NAME` of a non-module name is an edge to the package."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree) if deferred else tree.body:
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "robustmix"):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    hit = sub if sub in mods else target
                    if hit in mods and hit != m:
                        graph[m].add(hit)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_among_robustmix_modules():
    assert cycles(import_graph(modules())) == []


# --- the stages --------------------------------------------------------------------------------

def stage_of(module: str) -> str | None:
    """The folder (stage) a module belongs to: robustmix.evaluation.plan -> "evaluation"; None for the
    package's own __init__ and __main__ (the face and the program, which may use every stage)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else None


def stage_order() -> list[str]:
    """The stages in the order data flows, as the package docstring lists them ("    name/  job")."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text())) or ""
    return re.findall(r"^    ([a-z]+)/ ", doc, flags=re.M)


def allowed_imports() -> dict[str, set[str]]:
    """Each stage's "May import: a, b, c." line from its __init__.py docstring (none: "nothing in robustmix";
    all: "every other stage")."""
    out = {}
    for stage in stage_order():
        doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text())) or ""
        found = re.search(r"^May import: (.+?)\.?$", doc, flags=re.M)
        assert found, f"robustmix/{stage}/__init__.py: its docstring must end with a 'May import: ...' line"
        text = found.group(1)
        if text.startswith("nothing"):
            out[stage] = set()
        elif text.startswith("every other stage"):
            out[stage] = set(stage_order()) - {stage}
        else:
            out[stage] = {s.split(" (")[0].strip() for s in text.split(",")}
    return out


def stage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Stage -> the stages its modules import (within a stage, imports are free)."""
    out: dict[str, set[str]] = {}
    for m, targets in graph.items():
        a = stage_of(m)
        if a is None:
            continue
        out.setdefault(a, set())
        out[a] |= {b for b in map(stage_of, targets) if b is not None and b != a}
    return out


def layer_violations(stages: dict[str, set[str]], allowed: dict[str, set[str]], order: list[str]) -> list[str]:
    """Every import of a stage that its docstring does not allow, or that runs back up the order."""
    rank = {s: i for i, s in enumerate(order)}
    bad = []
    for a in sorted(stages):
        for b in sorted(stages[a]):
            if b not in allowed.get(a, set()):
                bad.append(f"{a} imports {b}, which its __init__.py does not allow")
            elif rank[b] > rank[a]:
                bad.append(f"{a} imports {b}, a later stage")
    for a in sorted(allowed):
        bad += [f"{a} may import {b}, a later stage" for b in sorted(allowed[a]) if rank.get(b, -1) > rank[a]]
    return bad


def test_the_layer_rule_catches_a_planted_upward_import():
    order = ["runtime", "data", "models", "cli"]
    allowed = {"runtime": set(), "data": {"runtime"}, "models": {"runtime", "data"}, "cli": {"runtime", "data", "models"}}
    good = {"runtime": set(), "data": {"runtime"}, "models": {"data"}, "cli": {"models", "runtime"}}
    assert layer_violations(good, allowed, order) == []
    planted = {**good, "data": {"runtime", "models"}}  # data reaching up into models
    assert layer_violations(planted, allowed, order) == ["data imports models, which its __init__.py does not allow"]
    loose = {**allowed, "data": {"runtime", "cli"}}  # a docstring allowing a later stage
    assert layer_violations(good, loose, order) == ["data may import cli, a later stage"]


def test_every_folder_is_a_stage_in_the_package_docstring():
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert sorted(stage_order()) == folders


def test_each_stage_imports_only_the_stages_below_it_that_its_docstring_names():
    stages = stage_graph(import_graph(modules(), deferred=True))  # deferred imports count too
    assert layer_violations(stages, allowed_imports(), stage_order()) == []


def test_the_package_top_level_holds_only_its_face_and_program():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py"]


@pytest.mark.parametrize("folder", sorted({p.parent for p in PACKAGE.rglob("__init__.py")}), ids=lambda p: p.name)
def test_no_folder_holds_more_than_a_dozen_modules(folder):
    count = len([p for p in folder.glob("*.py") if p.name != "__init__.py"])
    assert count <= MAX_MODULES, f"{folder.relative_to(PACKAGE.parent)} holds {count} modules: split it by job"


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_fits_in_one_sitting(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by job"


def test_no_merge_conflict_markers_in_tracked_text():
    import subprocess

    root = PACKAGE.parent
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    bad = []
    for name in files:
        if name.endswith((".py", ".md", ".toml", ".txt", ".ipynb", ".cfg", ".yml", ".yaml")) or name.startswith(".ci/"):
            path = root / name
            if path.is_file():
                for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                    if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "=======":
                        bad.append(f"{name}:{n}")
    assert bad == [], f"merge conflict markers at {', '.join(bad[:5])}"
