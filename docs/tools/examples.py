"""Run the code examples of the documentation, and check (or rewrite) the outputs the pages show.

A fenced block is an *example* when the line before its opening fence is `<!-- exec -->`; a
```python example runs in the page's namespace (the page's examples share one, like a notebook),
a ```bash example runs in bash with the `robustmix` of this Python on PATH. A block whose line
before the fence is `<!-- output -->` shows what the example just before it printed, and must be
exactly that. The pages run in the order of the navigation (mkdocs.yml), one after the other, in
one scratch folder, the way a reader following the guides would run them: the quickstart's example
writes `runs/`, which later guides load. Each run uses one CPU thread and, on x86-64, the AVX2
kernels (`pin_kernels`), so the numbers are the same from run to run, and the same on an AVX-512
CPU as on the AVX2 EPYC that wrote the pages (checked on a Zen 4 EPYC, which prints exactly the
pages' outputs with the pin and other tables without it).

An image `![...](../assets/examples/NAME.png)` on a page with examples must be a file the page's  # refcheck: allow
examples wrote (NAME.png in the scratch folder): the figures in the guides are made by the code
beside them.

    python docs/tools/examples.py            # run every page's examples, report differences
    python docs/tools/examples.py --update   # run them and write the real outputs and figures into the pages

tests/test_docs.py runs the same thing and fails on any difference.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# ATen's own kernels, oneDNN's convolutions and MKL's matmuls, pinned to AVX2 (as tests/conftest.py
# does): read when torch loads, so `pin_kernels` runs before the first `import torch`.
KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def pin_kernels() -> None:
    """Pin torch's CPU kernels to AVX2 on x86-64 (a variable already set wins); call before torch loads."""
    import platform

    if platform.machine().lower() in ("x86_64", "amd64"):
        for name, value in KERNELS.items():
            os.environ.setdefault(name, value)


ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXEC, OUTPUT = "<!-- exec -->", "<!-- output -->"
FENCE = re.compile(r"^(```+|~~~+)([\w-]*)[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)
FIGURE = re.compile(r"!\[[^\]]*\]\((?:\.\./)*assets/examples/([\w.-]+\.png)\)")


@dataclass
class Block:
    marker: str  # EXEC or OUTPUT
    lang: str
    code: str
    start: int  # offsets of the body in the page text
    end: int


def blocks(text: str) -> list[Block]:
    """The marked fenced blocks of a page, in order."""
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        if before in (EXEC, OUTPUT):
            found.append(Block(before, m.group(2), m.group(3), m.start(3), m.end(3)))
    return found


def pages_in_nav_order() -> list[Path]:
    """Markdown pages named in mkdocs.yml's nav that exist in docs/, in nav order."""
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    out: list[Path] = []

    def walk(item):
        if isinstance(item, str):
            if item.endswith(".md") and (DOCS / item).is_file():
                out.append(DOCS / item)
        elif isinstance(item, dict):
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(nav)
    return out


def run_python(code: str, namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<docs example>", "exec"), namespace)
    return out.getvalue()


def run_bash(code: str, cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bash example failed (exit {done.returncode}):\n{code}\n{done.stderr}")
    return done.stdout


@dataclass
class PageRun:
    page: Path
    outputs: list[tuple[Block, str]]  # (output block, what the example before it printed)
    figures: dict[str, Path]  # NAME.png the page shows -> the file its examples wrote (missing files too)


def run_page(page: Path, cwd: Path) -> PageRun | None:
    """Run one page's examples in cwd; None if it has none."""
    import torch

    text = page.read_text(encoding="utf-8")
    marked = blocks(text)
    if not any(b.marker == EXEC for b in marked):
        return None
    namespace: dict = {"__name__": "__docs__"}
    outputs: list[tuple[Block, str]] = []
    last: str | None = None
    threads = torch.get_num_threads()
    old = Path.cwd()
    torch.set_num_threads(1)
    os.chdir(cwd)
    try:
        for b in marked:
            if b.marker == EXEC:
                last = run_python(b.code, namespace) if b.lang == "python" else run_bash(b.code, cwd)
            else:
                if last is None:
                    raise ValueError(f"{page}: an output block with no example before it")
                outputs.append((b, last))
                last = None
    finally:
        os.chdir(old)
        torch.set_num_threads(threads)
    figures = {name: cwd / name for name in FIGURE.findall(text)}
    return PageRun(page, outputs, figures)


def run_all(cwd: Path) -> list[PageRun]:
    return [r for r in (run_page(p, cwd) for p in pages_in_nav_order()) if r is not None]


def update(run: PageRun) -> None:
    """Write the real outputs into the page and copy its figures into docs/assets/examples/."""
    text = run.page.read_text(encoding="utf-8")
    for b, out in sorted(run.outputs, key=lambda o: -o[0].start):
        text = text[: b.start] + out + ("" if out.endswith("\n") or not out else "\n") + text[b.end:]
    run.page.write_text(text, encoding="utf-8")
    for name, made in run.figures.items():
        if made.is_file():
            (DOCS / "assets" / "examples").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made, DOCS / "assets" / "examples" / name)


def differences(runs: list[PageRun]) -> list[str]:
    problems = []
    for r in runs:
        name = r.page.relative_to(ROOT)
        for b, out in r.outputs:
            if b.code != out:
                problems.append(f"{name}: shown output differs from the real one:\n--- shown\n{b.code}--- real\n{out}")
        for fig, made in r.figures.items():
            if not made.is_file():
                problems.append(f"{name}: the page shows {fig}, which its examples did not write")
    return problems


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="robustmix-docs-") as tmp:
        runs = run_all(Path(tmp))
        if "--update" in argv:
            for r in runs:
                update(r)
            print(f"updated {len(runs)} page(s)")
            return 0
        problems = differences(runs)
    print("\n".join(problems) or f"{len(runs)} page(s): every shown output matches")
    return 1 if problems else 0


if __name__ == "__main__":
    pin_kernels()
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
