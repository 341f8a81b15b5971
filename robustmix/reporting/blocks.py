"""A report as a list of blocks, rendered twice: GitHub Markdown here (`to_markdown`) and one
self-contained HTML page in `robustmix.reporting.page`.

Blocks are tuples:

    ("h1" | "h2" | "h3", text)          a heading; in the page each h2 opens a section that folds
    ("p", text), ("list", [text, ...]), ("pre", text)
    ("table", DataFrame)                 cells may be `Tip`s: text with a note the page shows on hover
    ("img", path in the folder, alt)     a PNG, embedded in the page
    ("fold", summary, [blocks])          folded (closed) until opened: <details> in both renderings
    ("both", [blocks], html)             the blocks in Markdown, the HTML string in the page

Text may hold the inline Markdown `[label](href)`, `**bold**` and `` `code` ``; everything else is
escaped. `excerpts` cuts the sections a report cites out of a Markdown document (docs/protocol.md)
so that the page can carry them instead of linking to a file it would not travel with.
"""

from __future__ import annotations

import html
import re

import pandas as pd

from .tables import markdown

LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
BOLD = re.compile(r"\*\*(.+?)\*\*")
CODE = re.compile(r"`([^`]+)`")
# a cell that reads as a number: "63.1 [59.9, 67.2]", "+3.1 pp", "-2.07 ‖∇x‖₂", "[+1.1, +5.2]", "9.33, 9.48, 9.54", "–"
NUMBERS = re.compile(r"[−+\-–]?\d[\d.,]*( \[[^\]]*\])?( \S+)?|\[[−+\-–]?[\d.]+, [−+\-–]?[\d.]+\]|[\d.]+(, [\d.]+)+|–")


class Tip(str):
    """A table cell's text with a note (`tip`): the page shows it on hover (title) and a CSS class
    (`cls`, e.g. a check's status colour); Markdown and CSV show the text alone. E.g. a pooled error
    with its per-seed values."""

    tip: str
    cls: str

    def __new__(cls, text: str, tip: str = "", css: str = "") -> Tip:
        out = super().__new__(cls, text)
        out.tip, out.cls = tip, css
        return out


def cell(v) -> str:
    if isinstance(v, float):
        return "–" if pd.isna(v) else f"{v:.1f}"
    return str(v)


def numeric(v) -> bool:
    """Whether a cell reads as a number (right-aligned, sorted as one)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) or bool(NUMBERS.fullmatch(cell(v)))


def md_table(df: pd.DataFrame) -> str:
    """GitHub Markdown (reporting.tables.markdown: repeated Setting/Metric cells left blank, as in the
    paper's Table 3), numeric columns right-aligned, "|" and line breaks inside cells escaped."""
    cols = list(df.columns)
    nums = [c for c in cols if c not in ("Setting", "Metric", "Method") and df[c].map(numeric).all()]
    escaped = df.map(lambda v: str(v).replace("|", "\\|").replace("\n", " ") if isinstance(v, str) else v)
    return markdown(escaped, digits=1, left=tuple(c for c in cols if c not in nums))


def to_markdown(blocks: list[tuple]) -> str:
    return "\n\n".join(_md(b) for b in blocks) + "\n"


def _md(b: tuple) -> str:
    kind = b[0]
    if kind in ("h1", "h2", "h3"):
        return "#" * int(kind[1]) + " " + b[1]
    if kind == "p":
        return b[1]
    if kind == "list":
        return "\n".join(f"- {item}" for item in b[1])
    if kind == "pre":
        return "```\n" + b[1].rstrip("\n") + "\n```"
    if kind == "table":
        return md_table(b[1]) if not b[1].empty else "(no rows)"
    if kind == "img":
        return f"![{b[2]}]({b[1]})"
    if kind == "fold":  # GitHub renders <details>; the blank lines let the Markdown inside render
        return f"<details><summary>{html.escape(b[1])}</summary>\n\n" + "\n\n".join(_md(x) for x in b[2]) + "\n\n</details>"
    if kind == "both":
        return "\n\n".join(_md(x) for x in b[1])
    raise ValueError(f"unknown block {kind!r}")


def inline(text: str, links=None) -> str:
    """Escape, then turn the inline Markdown (links, bold, code) into HTML. `links(href)` gives the
    attributes of an <a> (a dict with at least "href"), or None to print the label alone."""
    made: list[str] = []

    def keep(m: re.Match) -> str:
        attrs = links(m.group(2)) if links else {"href": m.group(2)}
        label = html.escape(m.group(1))
        made.append(label if attrs is None else
                    "<a " + " ".join(f'{k}="{html.escape(str(v), quote=True)}"' for k, v in attrs.items()) + f">{label}</a>")
        return f"\x00{len(made) - 1}\x00"

    s = html.escape(LINK.sub(keep, text), quote=False)
    s = BOLD.sub(r"<strong>\1</strong>", s)
    s = CODE.sub(r"<code>\1</code>", s)
    return re.sub("\x00(\\d+)\x00", lambda m: made[int(m.group(1))], s)


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text).lower()).strip("-")


# --- sections of a Markdown document, carried in a report ----------------------------------------

HEADING = re.compile(r'^(#{1,6}) (?:<a id="([^"]+)"></a>)?(.*)$')
ANCHOR = re.compile(r'<a id="([^"]+)"></a>')


def excerpts(document: str, anchors: list[str]) -> dict[str, tuple[str, list[tuple]]]:
    """{anchor: (heading, blocks)}: for each anchor of `document` (a heading's `<a id="...">`), the
    text from that heading to the next heading of any level, as blocks (paragraphs, lists, tables,
    code). Anchors the document lacks are left out."""
    lines = document.splitlines()
    fenced, heads = False, []  # the headings' line numbers, never a "# comment" inside a code block
    for i, line in enumerate(lines):
        fenced ^= line.startswith("```")
        if not fenced and HEADING.match(line):
            heads.append(i)
    starts = {m.group(2): i for i in heads if (m := HEADING.match(lines[i])) and m.group(2)}
    out = {}
    for a in anchors:
        if a not in starts:
            continue
        i = starts[a]
        end = next((j for j in heads if j > i), len(lines))
        out[a] = (HEADING.match(lines[i]).group(3).strip(), _blocks(lines[i + 1:end]))
    return out


def _blocks(lines: list[str]) -> list[tuple]:
    """A few Markdown constructs as blocks: paragraphs, "- " lists, pipe tables, fenced code."""
    out, para, i = [], [], 0

    def flush():
        if para:
            out.append(("p", ANCHOR.sub("", " ".join(para)).strip()))
            para.clear()

    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            flush()
            j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("```")), len(lines))
            out.append(("pre", "\n".join(lines[i + 1:j])))
            i = j + 1
            continue
        if line.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            out.append(("table", pd.DataFrame(rows[2:], columns=rows[0])))
            continue
        if re.match(r"^\s*[-*] ", line) or re.match(r"^\s*\d+\. ", line):
            flush()
            items = []
            while i < len(lines) and lines[i].strip():
                if re.match(r"^\s*([-*]|\d+\.) ", lines[i]):
                    items.append(re.sub(r"^\s*([-*]|\d+\.) ", "", lines[i]))
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            out.append(("list", [ANCHOR.sub("", x) for x in items]))
            continue
        if line.strip():
            para.append(line.strip())
        else:
            flush()
        i += 1
    flush()
    return out
