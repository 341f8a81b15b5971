"""The house rules a reader relies on: no import circle among robustmix's modules, no module
longer than a reader can take in one sitting."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "robustmix"
MAX_LINES = 360  # "about 350 lines"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module-level imports between robustmix modules. `from . import files` is an edge to the
    module `files`, not to the package; `from . import NAME` of a non-module name is an edge to the package."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
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
