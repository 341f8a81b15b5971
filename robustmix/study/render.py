"""One report, two renderings: a list of blocks -> GitHub Markdown (README.md) and a
self-contained HTML page (report.html: CSS inline, every image embedded as base64, no network).

Blocks are tuples: ("h1"|"h2"|"h3", text), ("p", text), ("list", [text, ...]), ("pre", text),
("table", DataFrame), ("img", path relative to the report folder, alt text). Text may hold the
inline Markdown `[label](href)`, `**bold**` and `` `code` ``; the HTML renderer escapes
everything else.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from ..reporting.tables import markdown

LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
BOLD = re.compile(r"\*\*(.+?)\*\*")
CODE = re.compile(r"`([^`]+)`")

CSS = """
body { font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; margin: 0 auto;
       max-width: 1180px; padding: 1.5em; }
h1 { font-size: 1.7em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.35em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 1.6em; }
h3 { font-size: 1.1em; margin-top: 1.3em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fbfcfd; }
img { max-width: 100%; height: auto; border: 1px solid #eaeef2; margin: .5em 0; }
pre, code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; background: #f6f8fa; }
pre { padding: .8em; overflow-x: auto; }
code { padding: 0 .2em; }
"""


def cell(v) -> str:
    if isinstance(v, float):
        return "–" if pd.isna(v) else f"{v:.1f}"
    return str(v)


def md_table(df: pd.DataFrame) -> str:
    """GitHub Markdown (report.markdown: repeated Setting/Metric cells left blank, as in the paper's
    Table 3), numeric columns right-aligned, "|" and line breaks inside cells escaped."""
    cols = list(df.columns)
    numeric = [c for c in cols if c not in ("Setting", "Metric", "Method") and df[c].map(lambda v: isinstance(v, (int, float))).all()]
    escaped = df.map(lambda v: v.replace("|", "\\|").replace("\n", " ") if isinstance(v, str) else v)
    return markdown(escaped, digits=1, left=tuple(c for c in cols if c not in numeric))


def to_markdown(blocks: list[tuple]) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + b[1])
        elif kind == "p":
            out.append(b[1])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in b[1]))
        elif kind == "pre":
            out.append("```\n" + b[1].rstrip("\n") + "\n```")
        elif kind == "table":
            out.append(md_table(b[1]) if not b[1].empty else "(no rows)")
        elif kind == "img":
            out.append(f"![{b[2]}]({b[1]})")
    return "\n\n".join(out) + "\n"


def inline(text: str) -> str:
    """Escape, then turn the inline Markdown (links, bold, code) into HTML."""
    links: list[str] = []

    def keep(m: re.Match) -> str:
        links.append(f'<a href="{html.escape(m.group(2), quote=True)}">{html.escape(m.group(1))}</a>')
        return f"\x00{len(links) - 1}\x00"

    s = html.escape(LINK.sub(keep, text), quote=False)
    s = BOLD.sub(r"<strong>\1</strong>", s)
    s = CODE.sub(r"<code>\1</code>", s)
    return re.sub("\x00(\\d+)\x00", lambda m: links[int(m.group(1))], s)


def html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p>(no rows)</p>"
    head = "".join(f"<th>{inline(str(c))}</th>" for c in df.columns)
    rows = []
    for row in df.itertuples(index=False):
        tds = []
        for v in row:
            text = cell(v)
            num = isinstance(v, (int, float)) or bool(re.fullmatch(r"[−+\-–]?[\d.]+( \[.*\])?( pp)?", text))
            tds.append(f'<td class="num">{inline(text)}</td>' if num else f"<td>{inline(text)}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def embed(folder: Path, rel: str, alt: str) -> str:
    data = base64.b64encode((folder / rel).read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}"></figure>'


def to_html(blocks: list[tuple], folder: Path, title: str) -> str:
    """A self-contained page; images read from `folder` and embedded."""
    body = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            anchor = re.sub(r"[^a-z0-9]+", "-", b[1].lower()).strip("-")
            body.append(f'<{kind} id="{anchor}">{inline(b[1])}</{kind}>')
        elif kind == "p":
            body.append(f"<p>{inline(b[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in b[1]) + "</ul>")
        elif kind == "pre":
            body.append(f"<pre>{html.escape(b[1])}</pre>")
        elif kind == "table":
            body.append(html_table(b[1]))
        elif kind == "img":
            body.append(embed(folder, b[1], b[2]))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
