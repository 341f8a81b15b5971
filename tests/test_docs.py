"""The documentation site (mkdocs.yml, docs/): it builds strictly, its references cover the code,
its examples run and print what the pages show, and every internal link of the built site resolves."""

from __future__ import annotations

import argparse
import doctest
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from robustmix.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]

# The public API: a package's __all__, or the public functions and classes a main module defines.
# Each module here has a page under docs/reference/api/ (mkdocstrings renders it from the code).
API_MODULES = (
    "robustmix", "robustmix.data", "robustmix.models", "robustmix.attacks",
    "robustmix.store", "robustmix.store.checkpoint", "robustmix.store.runs", "robustmix.store.results",
    "robustmix.training", "robustmix.training.config", "robustmix.training.recipes", "robustmix.training.save",
    "robustmix.training.guard",
    "robustmix.training.methods.registry", "robustmix.training.methods.mixing",
    "robustmix.evaluation", "robustmix.evaluation.config", "robustmix.evaluation.records", "robustmix.evaluation.guards",
    "robustmix.evaluation.minimal",
    "robustmix.soundness", "robustmix.soundness.verdicts",
    "robustmix.analysis", "robustmix.analysis.comparisons", "robustmix.analysis.stats", "robustmix.analysis.replication",
    "robustmix.analysis.curves", "robustmix.analysis.minimal",
    "robustmix.reporting", "robustmix.reporting.tables", "robustmix.reporting.text", "robustmix.reporting.figures",
    "robustmix.importing", "robustmix.importing.importer", "robustmix.importing.sources",
)
# The entry points a reader starts from: their docstrings carry a runnable example (run below).
WITH_EXAMPLES = (
    "robustmix.TrainConfig", "robustmix.train", "robustmix.save_checkpoint", "robustmix.load_checkpoint",
    "robustmix.import_model", "robustmix.attacks.fgsm", "robustmix.attacks.ifgsm", "robustmix.attacks.pgd",
    "robustmix.attacks.apgd", "robustmix.attacks.apgd_targeted", "robustmix.attacks.fab_targeted", "robustmix.attacks.square", "robustmix.attacks.fgsm_sweep",
    "robustmix.models.build_model", "robustmix.data.load_dataset", "robustmix.data.pixels",
    "robustmix.evaluation.evaluator.evaluate", "robustmix.reporting.tables.evidence",
)


def load_tool(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


hook = load_tool("cli_reference", ROOT / "docs" / "hooks" / "cli_reference.py")
examples = load_tool("docs_examples", ROOT / "docs" / "tools" / "examples.py")


def public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return [n for n in module.__all__ if not n.startswith("__")]
    return [n for n, v in vars(module).items()
            if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v)) and v.__module__ == module_name]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built with `mkdocs build --strict` (a warning fails the build)."""
    pytest.importorskip("mkdocs", reason="the docs extra (part of dev) is not installed")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def inventory(site: Path) -> set[str]:
    """The object names in the site's objects.inv (what mkdocstrings documented)."""
    data = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    return {line.split(" ", 1)[0] for line in zlib.decompress(data[header_end:]).decode().splitlines() if line}


# ---- the CLI reference ----

def test_every_cli_command_and_flag_has_an_entry_in_the_generated_reference(site):
    commands = hook.subcommands(build_parser())
    assert {"train", "attack", "report", "bench", "import"} <= set(commands)
    index = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for name, parser in commands.items():
        page = site / "reference" / "cli" / name / "index.html"
        assert page.is_file(), f"no reference page for `robustmix {name}`"
        text = page.read_text(encoding="utf-8")
        assert f'href="{name}/"' in index, f"the CLI index does not link to `robustmix {name}`"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            assert f'id="{hook.anchor(action)}"' in text, f"robustmix {name}: {action.option_strings or action.dest} has no entry"
            for flag in action.option_strings:
                assert f"{flag}" in text, f"robustmix {name}: {flag} is not on its reference page"


def test_a_newly_registered_command_gets_a_page_with_every_flag():
    parser = build_parser()
    sub = hook.subcommands(parser)["train"]  # any registered parser: a new one is added the same way
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    new = subparsers.add_parser("zz-new", help="a new command", description="a new command")
    new.add_argument("spec", help="a TOML spec")
    new.add_argument("--out", help="where results go (default out)")
    new.add_argument("--no-x", dest="x", action="store_false", help="turn x off")
    pages = hook.pages(parser)
    page = pages["reference/cli/zz-new.md"]
    assert 'id="arg-spec"' in page and 'id="opt-out"' in page and 'id="opt-no-x"' in page
    assert "[`robustmix zz-new`](zz-new.md)" in pages["reference/cli/index.md"]
    assert len(pages) == len(hook.subcommands(parser)) + 1 and sub is not None


def test_help_text_renders_literally():
    assert hook.text("a *b* `c` <d> e_f [g](h) | i") == r"a \*b\* \`c\` &lt;d&gt; e\_f \[g\](h) \| i"


# ---- the Python API reference ----

@pytest.mark.parametrize("module_name", API_MODULES)
def test_every_public_function_and_class_has_an_entry_and_a_docstring(site, module_name):
    documented = inventory(site)
    module = importlib.import_module(module_name)
    assert module_name in documented, f"{module_name} has no API page (docs/reference/api/)"
    for name in public_names(module_name):
        obj = getattr(module, name)
        canonical = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"  # where it is defined
        assert {f"{module_name}.{name}", canonical} & documented, f"{module_name}.{name} has no entry in the API reference"
        if inspect.isfunction(obj) or inspect.isclass(obj):
            doc = inspect.getdoc(obj) or ""
            auto = inspect.isclass(obj) and doc.startswith(f"{obj.__name__}(")  # a dataclass's generated one
            assert doc and not auto, f"{module_name}.{name} has no docstring"


def run_isolated(*args: str) -> subprocess.CompletedProcess:
    """`python ARGS` in a fresh interpreter from the repository root: the examples train models and
    load data, and nothing they do may leak into the other tests' process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)


DOCTESTS = """
import doctest, importlib, os, sys, tempfile
os.chdir(tempfile.mkdtemp(prefix="robustmix-doctest-"))
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
for qualname in sys.argv[1:]:
    module_name, name = qualname.rsplit(".", 1)
    for test in doctest.DocTestFinder(recurse=False).find(getattr(importlib.import_module(module_name), name), qualname, globs={}):
        runner.run(test)
sys.exit(1 if runner.summarize(verbose=False).failed else 0)
"""


@pytest.mark.parametrize("qualname", WITH_EXAMPLES)
def test_the_entry_points_have_a_docstring_example(qualname):
    module_name, name = qualname.rsplit(".", 1)
    obj = getattr(importlib.import_module(module_name), name)
    tests = doctest.DocTestFinder(recurse=False).find(obj, qualname, globs={})
    assert tests and tests[0].examples, f"{qualname}: no example (>>> lines) in its docstring"


def test_the_docstring_examples_run():
    done = run_isolated("-c", DOCTESTS, *WITH_EXAMPLES)
    assert done.returncode == 0, f"a docstring example fails:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"


# ---- the guides ----

def test_the_guides_examples_run_and_print_what_the_pages_show():
    done = run_isolated("docs/tools/examples.py")
    assert done.returncode == 0, f"{done.stdout[-8000:]}\n{done.stderr[-3000:]}\n(python docs/tools/examples.py --update rewrites them)"
    pages = int(done.stdout.split(" page(s)")[0].split()[-1])
    assert pages >= 6  # quickstart, train, attack, sound evaluation, import, reports


def test_cpu_kernels_are_pinned_to_avx2_on_x86():
    """tests/conftest.py's pin reached torch (it only works when set before torch loads): without it an
    AVX-512 CPU computes other digits models than the pages show."""
    cpuinfo = Path("/proc/cpuinfo")
    if os.uname().machine.lower() not in ("x86_64", "amd64") or not cpuinfo.is_file() or " avx2" not in cpuinfo.read_text():
        pytest.skip("the pin is for x86-64 CPUs with AVX2")
    import torch

    assert torch.backends.cpu.get_cpu_capability() == "AVX2"
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == examples.KERNELS["ONEDNN_MAX_CPU_ISA"]


def test_the_study_guide_shows_the_committed_spec_and_the_report_it_makes():
    page = (ROOT / "docs" / "guides" / "study.md").read_text(encoding="utf-8")
    spec = (ROOT / "benchmarks" / "study-digits.toml").read_text(encoding="utf-8")
    assert f"```toml\n{spec.rstrip()}\n```" in page, "the study guide's spec is not benchmarks/study-digits.toml: copy it again"
    controls = page.split("## Controls")[1].split("```toml\n")[1].split("```")[0]  # the controls' two tables, as committed
    assert controls.startswith("[[targets]]") and controls in (ROOT / "benchmarks" / "study-controls.toml").read_text(encoding="utf-8")
    for shot in ("report-1400.png", "report-390.png"):
        assert f"(../assets/study/{shot})" in page  # refcheck: allow (a link of docs/guides/study.md)
        assert (ROOT / "docs" / "assets" / "study" / shot).read_bytes() == (ROOT / "reports" / "cifar10" / shot).read_bytes()


def test_the_example_runner_finds_marked_blocks_only():
    page = "x\n<!-- exec -->\n```python\nprint(1)\n```\n\n<!-- output -->\n```text\n1\n```\n```python\nnot run\n```\n"
    found = examples.blocks(page)
    assert [(b.marker, b.lang, b.code) for b in found] == [(examples.EXEC, "python", "print(1)\n"), (examples.OUTPUT, "text", "1\n")]


# ---- the built site's links ----

class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)
            if value and ((key == "href" and tag in ("a", "link")) or (key == "src" and tag in ("img", "script"))):
                self.refs.append(value)


def parsed(path: Path, cache: dict) -> Links:
    if path not in cache:
        links = Links()
        links.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = links
    return cache[path]


def broken_links(site: Path) -> list[str]:
    """Every internal href/src of every HTML page that names no file of the site, or no id in it."""
    cache: dict = {}
    problems = []
    for page in sorted(site.rglob("*.html")):
        for ref in parsed(page, cache).refs:
            url = urlsplit(ref)
            if url.scheme or url.netloc or ref.startswith(("mailto:", "javascript:")):
                continue
            base = site if url.path.startswith("/") else page.parent  # 404.html links from the site root
            target = (base / unquote(url.path).lstrip("/")).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(site)}: {ref}"
            if not target.is_file() or site.resolve() not in target.parents:
                problems.append(f"{where}: no such file")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in parsed(target, cache).ids:
                problems.append(f"{where}: no id {url.fragment!r} there")
    return problems


def test_every_internal_link_of_the_built_site_resolves(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) > 20
    assert not broken_links(site), "\n".join(broken_links(site))


def test_the_link_check_finds_broken_links(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "index.html").write_text('<a href="a/">ok</a><a href="a/#top">ok</a><a href="b/">gone</a>'
                                         '<a href="a/#nowhere">bad anchor</a><img src="x.png"><a href="https://x.org/y">web</a>')
    (tmp_path / "a" / "index.html").write_text('<h1 id="top">A</h1><a href="../index.html">up</a><a href="#top">self</a>')  # refcheck: allow
    assert sorted(broken_links(tmp_path)) == [
        "index.html: a/#nowhere: no id 'nowhere' there", "index.html: b/: no such file", "index.html: x.png: no such file",
    ]


# ---- the built site in a browser and the API reference's shape ----

CODE_BLOCKS = """
return Array.from(document.querySelectorAll('.md-typeset pre > code')).map(c => {
  const s = getComputedStyle(c);
  return [c.textContent.split('\\n')[0], c.scrollWidth > c.clientWidth + 1, s.overflowX, s.backgroundImage.includes('radial-gradient')];
});
"""


def test_code_blocks_fit_or_scroll_with_a_visible_cue(site):
    """At a laptop's width no code block hides text without a cue: a block fits, or it scrolls sideways with
    the shadows of docs/assets/extra.css at its edges; the home page's set-up command fits whole."""
    from test_study import browser

    drv = browser()
    try:
        for page in [site / "index.html", *sorted((site / "guides").glob("*/index.html"))]:
            drv.get(page.as_uri())
            blocks = drv.execute_script(CODE_BLOCKS)
            assert blocks, page
            for first, wide, overflow, cue in blocks:
                assert not wide or (overflow in ("auto", "scroll") and cue), (page, first)
            if page == site / "index.html":
                setup = next(b for b in blocks if b[0].startswith("python3 -m venv"))
                assert not setup[1], "the home page's first command is cut at the right"
    finally:
        drv.quit()


def test_the_api_reference_puts_the_attacks_first_with_their_defaults_and_hides_the_plumbing(site):
    page = (site / "reference" / "api" / "attacks" / "index.html").read_text(encoding="utf-8")
    ids = [i for i in re.findall(r'<h[23] id="(robustmix\.attacks\.[^"]+)"', page)]
    assert ids[:6] == ["robustmix.attacks.fgsm.fgsm", "robustmix.attacks.fgsm.ifgsm", "robustmix.attacks.pgd.pgd",
                       "robustmix.attacks.apgd.apgd", "robustmix.attacks.apgd_targeted.apgd_targeted",
                       "robustmix.attacks.square.square"], ids[:8]
    text = re.sub(r"<[^>]+>", "", page)
    assert "PGD_ITERS" not in text and "iters: int = 40" in text  # defaults as values, not names
    registry = text[text.index("ATTACKS: dict[str, Attack]"):][:400]
    assert "craft_fgsm" not in registry and "Every attack by name" in registry  # its docstring, not its 20-line value
    for internal in ("box", "check_eps", "chunking", "strides", "prepare_inputs", "Crafting"):
        assert f'id="robustmix.attacks.{internal}"' not in page, internal
    training = (site / "reference" / "api" / "training" / "index.html").read_text(encoding="utf-8")
    order = re.findall(r'<h3 id="robustmix\.training\.guard\.([^"]+)"', training)
    assert order and order[0][0].islower() and order[-1].isupper(), order  # a module's functions before its constants
