"""A report's blocks as Markdown and as one self-contained page (robustmix.reporting.blocks, .page):
links that travel with the page, carried sections of a cited document, notes on table cells."""

from __future__ import annotations

import base64
import re

import pandas as pd

from robustmix.reporting.blocks import Tip, excerpts, numeric, to_markdown
from robustmix.reporting.page import to_html

DOC = """# The protocol
## <a id="claims"></a>The claims
See [C1](#c1) and [the web](https://example.org/x).

```bash
# a comment, not a heading
```

### <a id="c1"></a>C1. Mixup below ERM
- one
- two

| a | b |
|---|---|
| 1 | 2 |
## <a id="other"></a>Not cited
"""


def test_excerpts_cut_each_cited_section_to_its_next_heading():
    got = excerpts(DOC, ["c1", "claims", "missing"])
    assert list(got) == ["c1", "claims"]
    head, blocks = got["claims"]
    assert head == "The claims" and [b[0] for b in blocks] == ["p", "pre"] and blocks[1][1] == "# a comment, not a heading"
    head, blocks = got["c1"]
    assert head == "C1. Mixup below ERM" and blocks[0] == ("list", ["one", "two"])
    assert blocks[1][0] == "table" and list(blocks[1][1].columns) == ["a", "b"]


def test_the_page_travels_alone(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("a,b\n1,2\n")
    table = pd.DataFrame({"Method": ["ERM"], "FGSM": [Tip("63.1 [59.9, 67.2]", "per seed (0, 1): 63.08, 63.12")]}, dtype=object)
    blocks = [("h1", "A report"), ("p", "Rule: [C1](../docs/p.md#c1); data: [x](data/x.csv); gone: [y](elsewhere/y.csv)."),  # refcheck: allow
              ("h2", "Table"), ("table", table), ("h2", "Later", "folded"), ("fold", "More", [("p", "inside")])]
    notes = excerpts(DOC, ["c1", "claims"])
    page = to_html(blocks, tmp_path, "A report", source="../docs/p.md", notes=notes, notes_title="Protocol")  # refcheck: allow
    links = dict(re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', page))
    assert links["#note-c1"] == "C1" and 'title="C1. Mixup below ERM"' in page  # the cited section, carried; its heading a tooltip
    data = next(h for h, label in links.items() if label == "x")
    assert data.startswith("data:text/csv;base64,") and base64.b64decode(data.split(",", 1)[1]) == b"a,b\n1,2\n"
    assert 'download="x.csv"' in page and "elsewhere/y.csv" not in page and "gone: y." in page  # never a broken link
    assert 'id="note-c1"' in page and 'id="note-claims"' in page and 'id="note-other"' not in page
    assert 'title="per seed (0, 1): 63.08, 63.12"' in page and 'class="num nw"' in page
    assert '<details class="section" id="sec-later">' in page and '<details class="section" id="sec-table" open>' in page
    assert "<script src" not in page and "<link" not in page and 'href="#table"' in page  # the contents list
    md = to_markdown(blocks)
    assert "| 63.1 [59.9, 67.2] |" in md and "<details><summary>More</summary>" in md and "per seed" not in md


def test_cells_that_read_as_numbers():
    for text in ("63.1 [59.9, 67.2]", "+3.1 pp", "-2.07 ‖∇x‖₂", "[+1.1, +5.2]", "9.33, 9.48, 9.54", "–", "0, 1, 2"):
        assert numeric(text), text
    for text in ("2.11.0+cu130", "fooled 0 of 2 survivors", "erm-s0", "direction: difference < 0"):
        assert not numeric(text), text
