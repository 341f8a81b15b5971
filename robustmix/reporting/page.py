"""Blocks (`robustmix.reporting.blocks`) -> one self-contained HTML page that opens offline and travels
alone: CSS and a small script inline (no CDN), every image and every linked file of the report's
folder embedded (data: URIs), the sections of a cited document carried as notes (a link to
`SOURCE#anchor` becomes a link to the note, its heading a tooltip), no path of the machine that
wrote it.

The page: a contents list that stays in view (a folding bar at phone width), each h2 a section that
folds, tables sortable by a click on a header (numbers as numbers), a cell's note on hover (or tap),
figures at their natural size (never scaled up), each image's smallest text size (PNG metadata
written by `robustmix.reporting.figures.save_png`) in `data-text-px` for the browser test.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

import pandas as pd
from PIL import Image

from .blocks import Tip, anchor, cell, inline, numeric
from .figures import TEXT_PX

NOTE = "note-"  # a carried note's id: note-<anchor>

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d0d7de; --soft: #f6f8fa; --link: #0969da; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg); margin: 0; }
header, .layout { max-width: 1440px; margin: 0 auto; padding: 0 1.5em; }
.layout { display: grid; grid-template-columns: 220px minmax(0, 1fr); gap: 2.2em; padding-bottom: 4em; }
h1 { font-size: 1.6em; margin: .6em 0 .2em; overflow-wrap: anywhere; }
h2 { font-size: 1.3em; margin: 0; display: inline; }
h3 { font-size: 1.08em; margin: 1.3em 0 .4em; }
a { color: var(--link); }
p, li { overflow-wrap: anywhere; }
nav.toc { position: sticky; top: 0; align-self: start; max-height: 100vh; overflow-y: auto; padding: 1em 0; font-size: 13.5px; }
nav.toc summary { font-weight: 600; cursor: pointer; padding: 2px 6px; }
nav.toc ol { list-style: none; margin: .3em 0; padding: 0; }
nav.toc a { display: block; padding: 2px 8px; color: var(--fg); text-decoration: none; border-left: 3px solid transparent; }
nav.toc a:hover { background: var(--soft); }
nav.toc a.here { border-left-color: var(--link); font-weight: 600; }
main { min-width: 0; }
details.section { border-top: 1px solid var(--line); margin-top: 1.4em; padding-top: .5em; }
details.section > summary { cursor: pointer; list-style: none; padding: .2em 0; }
details.section > summary::-webkit-details-marker { display: none; }
details.section > summary::before { content: "▸"; display: inline-block; width: 1.1em; color: var(--muted); }
details.section[open] > summary::before { content: "▾"; }
details.fold { margin: .6em 0; }
details.fold > summary { cursor: pointer; color: var(--link); }
.scroll { overflow-x: auto; margin: .7em 0; max-width: 100%;
  /* a shadow at the edge that has more table behind it: the cue that the table scrolls */
  background: linear-gradient(to right, #fff 30%, rgba(255,255,255,0)), linear-gradient(to left, #fff 30%, rgba(255,255,255,0)) 100% 0,
              radial-gradient(farthest-side at 0 50%, rgba(0,0,0,.18), rgba(0,0,0,0)),
              radial-gradient(farthest-side at 100% 50%, rgba(0,0,0,.18), rgba(0,0,0,0)) 100% 0;
  background-repeat: no-repeat; background-size: 40px 100%, 40px 100%, 14px 100%, 14px 100%;
  background-attachment: local, local, scroll, scroll; }
.scroll table { background: transparent; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; overflow-wrap: break-word; }
th { background: var(--soft); text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " ⇅"; color: #8c959f; font-weight: normal; }
table.sortable th[aria-sort="ascending"]::after { content: " ▲"; color: var(--fg); }
table.sortable th[aria-sort="descending"]::after { content: " ▼"; color: var(--fg); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.nw, th.nw { white-space: nowrap; }
td[title] { text-decoration: underline dotted #8c959f; text-underline-offset: 3px; cursor: help; }
tr:nth-child(even) td { background: rgba(246, 248, 250, .6); }
td.long { min-width: 15em; }
figure { margin: .8em 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: var(--muted); font-size: 13px; }
figure.full { overflow-x: auto; } figure.full img { max-width: none; }  /* a tap shows a figure at its own size */
pre, code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; background: var(--soft); }
pre { padding: .8em; white-space: pre-wrap; overflow-wrap: anywhere; }
code { padding: 0 .2em; overflow-wrap: anywhere; }
.panel { border: 1px solid var(--line); border-radius: 8px; padding: .6em 1.1em .8em; margin: 1em 0; background: #fbfcfd; }
.callout { border-left: 4px solid #cf222e; background: #fff5f5; padding: .5em .9em; margin: .6em 0; }
.chip, .badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12.5px; font-weight: 600; white-space: nowrap; }
.chip { margin: 0 .3em .3em 0; }
ol.rows { list-style: none; padding: 0; margin: .5em 0 0; }
ol.rows > li { display: grid; grid-template-columns: 3.2em 8.8em minmax(0, 1fr) minmax(13em, auto); gap: 0 .8em;
               padding: .4em 0; border-top: 1px solid #eaeef2; align-items: baseline; }
ol.rows .est { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
ol.rows .sub { grid-column: 3 / -1; color: var(--muted); font-size: 13px; }
.v-reproduced { background: #dafbe1; color: #116329; } .v-not-reproduced { background: #ffebe9; color: #a40e26; }
.v-inconclusive { background: #fff8c5; color: #7d4e00; } .v-not-testable { background: #eaeef2; color: #424a53; }
.v-not-tested { background: #f6f8fa; color: #6e7781; border: 1px solid var(--line); }
.v-not-valid { background: #a40e26; color: #fff; }
td.st { text-align: center; font-weight: 600; }
table td.st-pass { background: #dafbe1; color: #116329; } table td.st-warn { background: #fff8c5; color: #7d4e00; }
table td.st-fail { background: #ffebe9; color: #a40e26; } table td.st-skip { color: #8c959f; } table td.st-not-informative { color: #8c959f; }
.note { border-left: 3px solid var(--line); padding-left: .9em; margin: 1em 0; }
.note:target { border-left-color: var(--link); }
#tip { position: fixed; z-index: 10; max-width: min(26em, 90vw); background: #24292f; color: #fff; font-size: 12.5px;
       padding: .4em .6em; border-radius: 6px; display: none; white-space: pre-line; }
@media (max-width: 900px) {
  header, .layout { padding: 0 .8em; }
  .layout { grid-template-columns: minmax(0, 1fr); gap: 0; }
  nav.toc { z-index: 5; background: #fff; border-bottom: 1px solid var(--line); max-height: 70vh; padding: .4em 0; }
  h1 { font-size: 1.3em; }
  .panel { padding: .4em .7em .6em; }
  ol.rows > li { grid-template-columns: 2.6em minmax(0, 1fr); }
  ol.rows > li > .what, ol.rows > li > .est, ol.rows .sub { grid-column: 2 / -1; }
  ol.rows .est { text-align: left; white-space: normal; }
}
"""

# Small and inline on purpose (the page must open offline, with no library to fetch): sorting,
# the notes a link opens, the contents that follow the reader, a cell's note on tap.
SCRIPT = """
(() => {
  const toc = document.querySelector('nav.toc details');
  if (toc && matchMedia('(max-width: 900px)').matches) toc.open = false;
  const key = td => { const t = td.textContent.trim().replace(/^[−–]/, '-');
    const m = t.match(/^[+-]?\\d+(\\.\\d+)?/); return t === '-' || t === '' ? null : m ? parseFloat(m[0]) : t.toLowerCase(); };
  const order = (a, b) => a === null ? 1 : b === null ? -1 : typeof a === typeof b ? (a < b ? -1 : a > b ? 1 : 0)
    : typeof a === 'number' ? -1 : 1;
  document.querySelectorAll('table.sortable').forEach(table => table.tHead.querySelectorAll('th').forEach((th, i) =>
    th.addEventListener('click', () => {
      const up = th.getAttribute('aria-sort') !== 'ascending';
      table.tHead.querySelectorAll('th').forEach(h => h.removeAttribute('aria-sort'));
      th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
      const rows = Array.from(table.tBodies[0].rows);
      rows.sort((r, s) => { const a = key(r.cells[i]), b = key(s.cells[i]);
        return a === null || b === null ? order(a, b) : (up ? 1 : -1) * order(a, b); });
      rows.forEach(r => table.tBodies[0].appendChild(r));
    })));
  const reveal = id => { const el = id && document.getElementById(id); if (!el) return;
    for (let p = el.parentElement; p; p = p.parentElement) if (p.tagName === 'DETAILS') p.open = true;
    el.scrollIntoView(); };
  addEventListener('hashchange', () => reveal(decodeURIComponent(location.hash.slice(1))));
  if (location.hash) reveal(decodeURIComponent(location.hash.slice(1)));
  const tip = document.getElementById('tip');
  document.addEventListener('click', e => { const td = e.target.closest('td[title]');
    if (!td) { tip.style.display = 'none'; return; }
    tip.textContent = td.title; tip.style.display = 'block';
    const r = td.getBoundingClientRect();
    tip.style.left = Math.max(4, Math.min(r.left, innerWidth - tip.offsetWidth - 4)) + 'px';
    tip.style.top = Math.min(r.bottom + 4, innerHeight - tip.offsetHeight - 4) + 'px'; });
  document.querySelectorAll('figure img').forEach(img => img.addEventListener('click', () =>
    img.parentElement.classList.toggle('full')));
  const links = Array.from(document.querySelectorAll('nav.toc a'));
  const heads = links.map(a => document.getElementById(a.hash.slice(1)));
  addEventListener('scroll', () => { let k = 0; heads.forEach((h, i) => { if (h && h.getBoundingClientRect().top < 120) k = i; });
    links.forEach((a, i) => a.classList.toggle('here', i === k)); }, { passive: true });
})();
"""


def data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


class Links:
    """How the page writes a link: an anchor of the page stays; `source#anchor` goes to its note (with
    the note's heading as a tooltip); a file of the report's folder is embedded (downloads under its
    name); http(s) stays; anything else is printed as its label alone (never a broken link)."""

    def __init__(self, folder: Path, source: str | None, notes: dict[str, tuple[str, list]]):
        self.folder, self.source, self.notes = Path(folder), source, notes

    def __call__(self, href: str) -> dict | None:
        if href.startswith("#"):
            return {"href": href}
        if href.startswith(("https://", "http://")):
            return {"href": href}
        base, _, frag = href.partition("#")
        if self.source and base == self.source:
            if frag in self.notes:
                return {"href": f"#{NOTE}{frag}", "title": self.notes[frag][0]}
            return {"href": "#notes"} if self.notes else None
        target = (self.folder / base).resolve()
        if target.is_file() and self.folder.resolve() in target.parents:
            return {"href": data_uri(target), "download": Path(base).name}
        return None


def html_table(df: pd.DataFrame, links=None, cls: str = "sortable") -> str:
    if df.empty:
        return "<p>(no rows)</p>"
    cols = list(df.columns)
    nums = {c for c in cols if df[c].map(lambda v: cell(v) == "–" or numeric(v)).all() and not df[c].map(lambda v: cell(v) == "–").all()}
    head = "".join(f'<th class="{"num " if c in nums else ""}{"nw" if len(str(c)) <= 16 else ""}">{inline(str(c), links)}</th>'
                   for c in cols)
    rows = []
    for row in df.itertuples(index=False):
        tds = []
        for c, v in zip(cols, row):
            text, classes = cell(v), []
            if c in nums:
                classes.append("num")
            if len(text) <= 28 or c in nums:
                classes.append("nw")
            elif len(text) > 60:
                classes.append("long")
            if isinstance(v, Tip) and v.cls:
                classes.append(v.cls)
            attrs = f' class="{" ".join(classes)}"' if classes else ""
            if isinstance(v, Tip) and v.tip:
                attrs += f' title="{html.escape(v.tip, quote=True)}"'
            tds.append(f"<td{attrs}>{inline(text, links)}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def figure(folder: Path, rel: str, alt: str) -> str:
    path = Path(folder) / rel
    with Image.open(path) as im:
        text_px = im.text.get(TEXT_PX, "") if hasattr(im, "text") else ""
    extra = f' data-text-px="{html.escape(text_px)}"' if text_px else ""
    return (f'<figure><img src="{data_uri(path)}" alt="{html.escape(alt, quote=True)}"{extra}>'
            f"<figcaption>{html.escape(alt)}</figcaption></figure>")


def render(blocks: list[tuple], folder: Path, links) -> list[str]:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h3":
            out.append(f'<h3 id="{anchor(b[1])}">{inline(b[1], links)}</h3>')
        elif kind == "p":
            out.append(f"<p>{inline(b[1], links)}</p>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{inline(i, links)}</li>" for i in b[1]) + "</ul>")
        elif kind == "pre":
            out.append(f"<pre>{html.escape(b[1])}</pre>")
        elif kind == "table":
            out.append(html_table(b[1], links))
        elif kind == "img":
            out.append(figure(folder, b[1], b[2]))
        elif kind == "fold":
            out.append(f'<details class="fold"><summary>{inline(b[1], links)}</summary>' + "\n".join(render(b[2], folder, links))
                       + "</details>")
        elif kind == "both":
            out.append(b[2](links) if callable(b[2]) else b[2])
        else:
            raise ValueError(f"unknown block {kind!r}")
    return out


def notes_section(notes: dict[str, tuple[str, list]], folder: Path, links: Links, title: str) -> tuple[str, str]:
    def cited(href: str) -> dict | None:  # inside a note, "#x" is the cited document's anchor
        return links(f"{links.source}{href}") if href.startswith("#") else links(href)

    body = [f'<section class="note" id="{NOTE}{a}"><h3>{inline(head, cited)}</h3>' + "\n".join(render(blocks, folder, cited))
            + "</section>" for a, (head, blocks) in notes.items()]
    return ("notes", f'<details class="section" id="notes"><summary><h2>{html.escape(title)}</h2></summary>' + "\n".join(body)
            + "</details>")


def to_html(blocks: list[tuple], folder: Path, title: str, *, source: str | None = None,
            notes: dict[str, tuple[str, list]] | None = None, notes_title: str = "Notes") -> str:
    """The page. `notes` ({anchor: (heading, blocks)}, e.g. `blocks.excerpts`) are carried in a last,
    folded section; links to `source#anchor` go to them. An ("h2", text, "folded") starts folded."""
    notes = notes or {}
    links = Links(folder, source, notes)
    h1 = next((b[1] for b in blocks if b[0] == "h1"), title)
    sections: list[tuple[str, str, str, list]] = [("", "", "", [])]  # (id, heading, state, blocks)
    for b in blocks:
        if b[0] == "h2":
            sections.append((anchor(b[1]), b[1], "" if len(b) > 2 and b[2] == "folded" else " open", []))
        elif b[0] != "h1":
            sections[-1][3].append(b)
    main = ["\n".join(render(sections[0][3], folder, links))]
    for sid, head, state, body in sections[1:]:
        main.append(f'<details class="section" id="sec-{sid}"{state}><summary><h2 id="{sid}">{inline(head, links)}</h2></summary>'
                    + "\n".join(render(body, folder, links)) + "</details>")
    toc = [("verdicts", "Verdicts")] if 'id="verdicts"' in main[0] else []
    toc += [(sid, head) for sid, head, _, _ in sections[1:]]
    if notes:
        sid, text = notes_section(notes, folder, links, notes_title)
        main.append(text)
        toc.append((sid, notes_title))
    nav = ('<nav class="toc" aria-label="Contents"><details open><summary>Contents</summary><ol>'
           + "".join(f'<li><a href="#{sid}">{html.escape(_plain(head))}</a></li>' for sid, head in toc) + "</ol></details></nav>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
            f"<header><h1 id=\"top\">{inline(h1, links)}</h1></header>\n<div class=\"layout\">{nav}\n<main>\n" + "\n".join(main)
            + "\n</main></div>\n<div id=\"tip\" role=\"tooltip\"></div>\n<script>" + SCRIPT + "</script>\n</body></html>\n")


def _plain(text: str) -> str:
    return re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text).replace("**", "").replace("`", "")
