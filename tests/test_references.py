"""Every reference in the repository points inside it, at something that exists.

`find_problems` checks the text of files (path -> contents) against these rules:

- **outside**: a path that starts by going up a folder (two dots and a slash at the start of a
  token; not `a/../b`, not Python's `from ..x import`), a path whose first folder is `shared`, or
  the upper-case protocol file name of the old shared notes (the project's own protocol is
  `docs/protocol.md`). Absolute paths (`/data/...`) are not flagged: reports record the commands
  that produced them.
- **missing**: in Markdown (`.md`, the Markdown cells of notebooks) every link `[text](target)`,
  image `![alt](target)`, reference `[id]: target` and HTML `src=`/`href=` is resolved against the
  file's folder and must name a tracked file or folder inside the repository. Anywhere, a mention
  `docs/…`, `reports/…`, `benchmarks/…`, `notebooks/…`, `tests/…`, `robustmix/…` or `.ci/…` with a
  file extension is taken from the repository root and must be a tracked file.
- **anchor**: a `#fragment` on a Markdown target must name an anchor of that file: an explicit
  `id`/`name` attribute (what `docs/protocol.md` uses, e.g. `docs/protocol.md#c3`) or a heading's
  GitHub slug.
- **absolute**: a Markdown link that starts with `/` (GitHub reads it from the repository root,
  a MkDocs site from the site root): write it relative to the file.

Skipped: URLs (`scheme:`), placeholders (a target containing `<`, `>`, `*`, `{`, `}`, `$` or `%`),
user outputs under `runs/`, fenced and inline code in Markdown (for links only), and any line that
carries the marker `ALLOW` or lies between a line carrying `OFF` and one carrying `ON` (the
constants below; for deliberate examples, such as this file's synthetic files).
"""

from __future__ import annotations

import json
import posixpath
import re
import subprocess
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOW, OFF, ON = "refcheck: allow", "refcheck: off", "refcheck: on"

UP = re.compile(r"(?<![\w./-])(?:\./)?(?:\.\./)+(?=[\w.~-])")
SHARED = re.compile(r"(?<![\w./-])shared/(?=[\w.-])")  # refcheck: allow
OLD_PROTOCOL = re.compile(r"PROTOCOL\.md")
BARE = re.compile(r"(?<![\w./$~@-])((?:docs|reports|benchmarks|notebooks|tests|robustmix|\.ci)/[\w./<>*{}$%#-]*)")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"'\n]*[\"'])?\s*\)")
REFDEF = re.compile(r"^ {0,3}\[(?!\^)[^\]\n]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HTML_REF = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""")
ANCHOR_ATTR = re.compile(r"""\b(?:id|name)\s*=\s*["']([^"']+)["']""")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.M)
FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`+[^`\n]*`+")
PLACEHOLDER = re.compile(r"[<>*{}$%]")
EXTENSION = re.compile(r"\.[A-Za-z0-9]+$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class Problem(NamedTuple):
    path: str
    line: int
    ref: str
    why: str  # "outside", "missing" or "anchor"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.ref!r}: {self.why}"


def blank(text: str, pattern: re.Pattern) -> str:
    """text with every match of pattern replaced by spaces (newlines kept), so offsets stay valid."""
    return pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def markdown_of(path: str, text: str) -> str | None:
    """The Markdown a file holds: the file itself, a notebook's Markdown cells, or None."""
    if path.endswith(".md"):
        return text
    if path.endswith(".ipynb"):
        try:
            cells = json.loads(text).get("cells", [])
        except ValueError:
            return None
        sources = ["".join(c.get("source", "")) for c in cells if c.get("cell_type") == "markdown"]
        return "\n".join(sources)
    return None


def github_slug(heading: str) -> str:
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors_of(markdown: str) -> set[str]:
    """Explicit id/name attributes and GitHub heading slugs (duplicates get -1, -2, ...)."""
    found = set(ANCHOR_ATTR.findall(markdown))
    seen: dict[str, int] = {}
    for heading in HEADING.findall(blank(markdown, FENCE)):
        slug = github_slug(heading)
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def skipped_lines(text: str) -> set[int]:
    """Line numbers (from 1) that carry the allow marker or lie in an off ... on block."""
    skipped, off = set(), False
    for number, line in enumerate(text.split("\n"), start=1):
        off = (off or OFF in line) and ON not in line
        if off or ALLOW in line or ON in line:
            skipped.add(number)
    return skipped


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def folders_of(paths: Iterable[str]) -> set[str]:
    """Every folder that holds one of the paths ("a/b/c.md" -> "a", "a/b")."""
    folders = set()
    for path in paths:
        parts = path.split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return folders


def find_problems(files: Mapping[str, str], tracked: Iterable[str] | None = None) -> list[Problem]:
    """Problems in `files` (repository path -> text). `tracked`: every path in the repository,
    binary files included (default: the keys of `files`)."""
    tracked = set(files) if tracked is None else set(tracked)
    folders = folders_of(tracked)
    anchors: dict[str, set[str] | None] = {}
    problems: list[Problem] = []

    def anchors_in(path: str) -> set[str] | None:  # None: not a Markdown file we hold
        if path not in anchors:
            markdown = markdown_of(path, files[path]) if path in files else None
            anchors[path] = None if markdown is None else anchors_of(markdown)
        return anchors[path]

    def check(path: str, line: int, ref: str, base: str) -> None:
        """ref, relative to the folder base, names a tracked file or folder (and its anchor)."""
        target = unquote(ref)
        if SCHEME.match(target) or target.startswith("//") or PLACEHOLDER.search(target):
            return  # a URL or a placeholder
        file, _, fragment = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(base, file)) if file else path
        if file.startswith("/"):
            problems.append(Problem(path, line, ref, "absolute"))  # GitHub and MkDocs read it differently
        elif resolved == ".." or resolved.startswith("../"):
            problems.append(Problem(path, line, ref, "outside"))
        elif resolved.split("/")[0] == "runs":
            return  # user outputs
        elif resolved not in tracked and resolved not in folders:
            problems.append(Problem(path, line, ref, "missing"))
        elif fragment and anchors_in(resolved) is not None and fragment not in anchors_in(resolved):
            problems.append(Problem(path, line, ref, "anchor"))

    for path, text in files.items():
        skipped = skipped_lines(text)
        reported: list[tuple[int, int]] = []  # spans the outside rule must not look at again
        markdown = markdown_of(path, text)
        if markdown is not None:
            prose = blank(blank(markdown, FENCE), INLINE_CODE)
            skipped_md = skipped_lines(markdown)
            for pattern in (LINK, REFDEF, HTML_REF):
                for m in pattern.finditer(prose):
                    line = line_of(prose, m.start(1))
                    if line not in skipped_md:
                        check(path, line, m.group(1), posixpath.dirname(path))
                    if path.endswith(".md"):  # offsets in prose are offsets in text
                        reported.append(m.span(1))
        if path.endswith(".html"):  # a page's href/src resolve from its folder, like a Markdown link
            for m in HTML_REF.finditer(text):
                if not m.group(1).startswith(("data:", "http:", "https:", "#", "mailto:")):
                    check(path, line_of(text, m.start(1)), m.group(1), posixpath.dirname(path))
                reported.append(m.span(1))
        for pattern in (UP, SHARED, OLD_PROTOCOL):
            for m in pattern.finditer(text):
                line = line_of(text, m.start())
                if line in skipped or any(a <= m.start() < b for a, b in reported):
                    continue
                token = re.match(r"[^\s'\"`()\[\]<>,;]*", text[m.start():]).group(0).rstrip(".")
                problems.append(Problem(path, line, token, "outside"))
                reported.append((m.start(), m.start() + len(token)))
        for m in BARE.finditer(text):
            ref = m.group(1).rstrip(".")
            line = line_of(text, m.start())
            if line not in skipped and not PLACEHOLDER.search(ref) and EXTENSION.search(ref.partition("#")[0]):
                check(path, line, ref, "")
    return sorted(set(problems))


def repository() -> tuple[dict[str, str], set[str]]:
    """(text of every tracked text file, every tracked path present on disk)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: `git ls-files` is needed to know the tracked files")
    texts: dict[str, str] = {}
    tracked: set[str] = set()
    for name in out.decode().split("\0"):
        file = ROOT / name
        if not name or not file.is_file():
            continue
        tracked.add(name)
        data = file.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            texts[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts, tracked


def generated_pages() -> set[str]:
    """The pages the documentation build generates (docs/hooks/cli_reference.py: one per CLI command)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs" / "hooks" / "cli_reference.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    from robustmix.cli import build_parser

    return {f"docs/{path}" for path in hook.pages(build_parser())}


def test_every_reference_in_the_repository_points_inside_it_at_something_that_exists():
    texts, tracked = repository()
    tracked |= generated_pages()  # links to them are checked in the built site (tests/test_docs.py)
    assert "docs/protocol.md" in texts and "tests/test_references.py" in texts  # the scan saw them
    problems = find_problems(texts, tracked)
    assert not problems, "bad references (fix them, or mark a deliberate example 'refcheck: allow'):\n" + "\n".join(
        map(str, problems)
    )


def test_committed_reports_name_an_image_folder_without_its_path():
    """A committed report names its data set ("imagefolder:$DATA"), never the folder on the machine that
    made it: a study's report stage rewrites every file it writes (data/probes.json missed it once)."""
    texts, _ = repository()
    found = [f"{path}:{n}" for path, text in texts.items() if path.startswith("reports/")
             for n, line in enumerate(text.splitlines(), 1) if re.search(r"imagefolder:/", line)]
    assert "reports/cifar10/data/probes.json" in texts and not found, found


def test_the_protocol_defines_the_anchors_that_reports_and_checks_link_to():
    anchors = anchors_of((ROOT / "docs" / "protocol.md").read_text(encoding="utf-8"))
    claims = {f"c{i}" for i in range(1, 13)}
    checks = {f"check-{name}" for name in (
        "iterative", "transfer", "gradient-free", "monotone", "unbounded", "converged", "gradients", "deterministic"
    )}
    assert claims | checks | {"verdict-rule", "checklist", "claims"} <= anchors


# Synthetic files with deliberately bad references, and paths that are not files of this repository:
# the repository scan skips them (refcheck: off).
BAD = {
    "robustmix/training/recipes.py": '"""Recipes (see ../shared/notes.md)."""\n',
    "robustmix/analysis/comparisons.py": '"""Figure 2 (see shared/PROTOCOL.md)."""\n',
    "robustmix/analysis/stats.py": '"""See the shared PROTOCOL.md and ./../up/x.py."""\nURL = "docs/protocol.md#check-no"\n',
    "README.md": "[guide](docs/missing.md), `reports/gone.csv`, [c99](docs/protocol.md#c99)\n",
    "docs/index.md": "Intro.\n\n[up](../../outside.md) and [self](#nowhere)\n[root](/README.md)\n",
    "notebooks/a.ipynb": json.dumps({"cells": [{"cell_type": "markdown", "source": ["[x](gone.png)"]}]}),
    "docs/protocol.md": '## <a id="c1"></a>C1. A claim\n\n### Two words\n',
}


def test_bad_references_are_reported():
    found = {(p.path, p.line, p.ref, p.why) for p in find_problems(BAD)}
    assert found == {
        ("robustmix/training/recipes.py", 1, "../shared/notes.md", "outside"),
        ("robustmix/analysis/comparisons.py", 1, "shared/PROTOCOL.md", "outside"),
        ("robustmix/analysis/stats.py", 1, "PROTOCOL.md", "outside"),
        ("robustmix/analysis/stats.py", 1, "./../up/x.py", "outside"),
        ("robustmix/analysis/stats.py", 2, "docs/protocol.md#check-no", "anchor"),
        ("README.md", 1, "docs/missing.md", "missing"),
        ("README.md", 1, "reports/gone.csv", "missing"),
        ("README.md", 1, "docs/protocol.md#c99", "anchor"),
        ("docs/index.md", 3, "../../outside.md", "outside"),
        ("docs/index.md", 3, "#nowhere", "anchor"),
        ("notebooks/a.ipynb", 1, "gone.png", "missing"),
        ("docs/index.md", 4, "/README.md", "absolute"),
    }


def test_the_markers_silence_only_their_lines():
    up = "x = '../up.txt'"
    text = "\n".join([f"{up}  # {ALLOW}", up, f"# {OFF}", up, f"# {ON}", up])
    assert [(p.line, p.why) for p in find_problems({"a.py": text})] == [(2, "outside"), (6, "outside")]


GOOD = {
    "robustmix/cli/train.py": "from ..errors import RobustmixError\nfrom . import x\n",
    "tests/test_cli.py": '["mixup-target/../runs/erm-target", "runs/erm/meta.json", "/data/cifar10"]\n',
    "robustmix/reporting/tables.py": 'f"reports/{name}.md", "docs/<page>.md", "tests/*.py", "$ROOT/reports/x.md"\n',
    "docs/index.md": (
        "[home](../README.md), [c1](protocol.md#c1), [two](protocol.md#two-words), "
        "[web](https://example.org/a/../b), ![fig](img/figure.png), [folder](../reports/)\n"
        "```\n[not a link](nowhere.md)\n```\n`[code](nowhere.md)` and docs/protocol.md#c1.\n"
        "[^1]: a footnote, not a path\n"
    ),
    "README.md": "See `docs/protocol.md#c1`, `robustmix/cli/__init__.py`, reports/, [two](docs/protocol.md#two-words).\n",
    "docs/protocol.md": '## <a id="c1"></a>C1. A claim\n\n### Two words\n',
    "docs/img/figure.png": "",
    "reports/perf.md": "",
}


def test_legitimate_references_are_not_reported():
    tracked = set(GOOD) | {"robustmix/cli/__init__.py", "robustmix/runtime/errors.py"}
    assert find_problems(GOOD, tracked) == []
# refcheck: on
