"""The study report's blocks (`robustmix.reporting.blocks`) in reading order, answer first: the verdict
panel (the headline of `headline.py`: the ceiling finding, the tally, one line per claim) and the
claims table on top; then what was run, the tables, the figures, the soundness checks as a
pass/warn/fail grid (every number on hover and in a folded table; all of them in data/checks.csv),
the uncertainty. README.md and report.html render the same blocks (`to_markdown`, `to_html`); the
page also carries the sections of docs/protocol.md it cites (`protocol_notes`), so it travels alone.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from ..analysis.replication import BORROWED, EXAMPLES_ONLY, TWO_WAY
from ..reporting.blocks import excerpts, inline
from ..soundness.verdicts import ControlReading
from .attacking import SUITES, suite_config
from .claims import Claim, Study
from .headline import CONTROLS_MISREAD, tally_counts
from .spec import StudySpec
from .tables import fmt, p_text

NOTES_TITLE = "The protocol, as this report cites it"


def css_verdict(verdict: str) -> str:
    return "v-" + verdict.replace(" ", "-")


def verdict_panel(head: list[tuple], claims: list[Claim], proto: str) -> tuple:
    """("both", the headline blocks, the panel's HTML): the same words and numbers, the page's as a
    panel: the ceiling finding called out, the tally as chips, one row per claim (its verdict, the
    difference and interval, p after Holm, what it rests on and why it was decided before a test)."""

    def page(links) -> str:
        out = ['<section class="panel" id="verdicts" aria-label="Verdicts">']
        for b in head:
            if b[0] == "p" and b[1].startswith(("**Under strong attacks", CONTROLS_MISREAD)):
                out.append(f'<p class="callout">{inline(b[1], links)}</p>')
            elif b[0] == "p" and b[1].startswith("**The controls read"):
                out.append(f"<p>{inline(b[1], links)}</p>")
            elif b[0] == "p":
                chips = " ".join(f'<span class="chip {css_verdict(v)}">{n} {v}</span>' for v, n in tally_counts(claims).items())
                out.append(f'<p class="tally">{chips}</p><p>{inline(b[1], links)}</p>')
        out.append('<ol class="rows">' + "".join(claim_row(c, proto, links) for c in claims) + "</ol></section>")
        return "\n".join(out)

    return ("both", head, page)


def claim_row(c: Claim, proto: str, links) -> str:
    measured = c.difference is not None
    est = (f'<span class="diff">{fmt(c.difference, c.unit)} {html.escape(c.unit)}</span> '
           f'<span class="ci">[{fmt(c.lo, c.unit)}, {fmt(c.hi, c.unit)}]</span>'
           + (f' · p<sub>Holm</sub> {p_text(c.p_holm)}' if c.p_holm is not None else f" · p {p_text(c.p_value)}")) if measured else "–"
    sub = "; ".join(x for x in (c.reason, f"rests on {c.rests_on}" if c.rests_on else "") if x)
    data = " ".join(f'data-{k}="{html.escape(str(v), quote=True)}"' for k, v in
                    (("claim", c.claim), ("verdict", c.verdict), ("difference", "" if not measured else fmt(c.difference, c.unit)),
                     ("lo", "" if not measured else fmt(c.lo, c.unit)), ("hi", "" if not measured else fmt(c.hi, c.unit))))
    return (f'<li {data}><span class="cid">{inline(f"[{c.claim}]({proto}#{c.anchor})", links)}</span>'
            f'<span><span class="badge {css_verdict(c.verdict)}">{html.escape(c.verdict)}</span></span>'
            f'<span class="what">{html.escape(c.part)}</span><span class="est">{est}</span>'
            + (f'<span class="sub">{html.escape(sub)}</span>' if sub else "") + "</li>")


def protocol_notes(protocol: Path, proto: str, markdown: str) -> dict[str, tuple[str, list]]:
    """The sections of docs/protocol.md that `markdown` (the report) cites as `proto#anchor`, and those
    they cite in turn, as blocks to carry in the page; {} when the file is not on this machine (an
    installed robustmix without its docs: the page then prints those links' labels alone)."""
    if not protocol.is_file():
        return {}
    text = protocol.read_text(encoding="utf-8")
    wanted = list(dict.fromkeys(re.findall(re.escape(proto) + r"#([\w-]+)", markdown)))
    notes = excerpts(text, wanted)
    inner = [a for _, blocks in notes.values() for b in blocks for a in re.findall(r"\]\(#([\w-]+)\)", str(b[1:]))]
    notes.update(excerpts(text, [a for a in dict.fromkeys(inner) if a not in notes]))
    order = {a: i for i, a in enumerate(re.findall(r'<a id="([^"]+)"></a>', text))}
    return dict(sorted(notes.items(), key=lambda kv: order.get(kv[0], 0)))


def suites_text(spec: StudySpec, proto: str = "docs/protocol.md") -> list[str]:
    items = []
    for suite in SUITES:
        got = suite_config(spec, suite)
        if got is None:
            items.append(f"{suite} suite: not run")
            continue
        c, n, seed = got
        budget = "" if suite == "paper" else (f"; PGD {c.pgd_iters} steps × {c.pgd_restarts} restart(s), APGD {c.apgd_iters} iterations × "
                                              f"{c.apgd_restarts} restart(s), Square {c.square_queries} queries"
                                              f"{' on the examples no gradient attack fooled' if c.square_on == 'survivors' else ''}, "
                                              f"attack seed {c.seed}"
                                              f"{'; nested over eps (docs/protocol.md#nested-eps)' if c.nest_eps and len(c.eps) > 1 else ''}")
        items.append(f"{suite} suite: {', '.join(c.attacks)}; eps {', '.join(f'{e * 255:g}' for e in c.eps)}/255; I-FGSM {c.iters} "
                     f"iterations; {', '.join(c.settings)}; {'all test examples' if not n else f'{n} test examples (stratified, seed {seed})'}{budget}")
    for t in spec.bench.targets:
        if t.settings:
            items.append(f"{t.name}: scored {', '.join(t.settings)} only (its [[targets]] settings in the spec, which says why): "
                         "its rows are missing from the other settings' tables, and no comparison uses them")
    controls = ", ".join(f"{name} ({role.replace('-', ' ')})" for name, role in spec.controls.items())
    items.append(f"controls: {controls}, attacked like the targets and in no claim's arms (see Controls)" if controls else
                 "controls: none. Missing from the evidence: no positive control (an adversarially trained model) shows that "
                 "these attacks read robustness where it exists, and no negative control (a planted masked model) shows that "
                 f"the checks catch gradient masking ([controls]({proto}#controls))")
    return items


def uncertainty_text(study: Study) -> list[str]:
    one = [n for n, s in study.seeds.items() if len(s) == 1]
    text = [
        "Every pooled error and every difference treats the **training seed** as the unit of replication "
        f"(robustmix.analysis.replication, method: {TWO_WAY}): its variance is the between-seed variance of the per-seed results divided "
        "by the number of seeds plus the test-set variance of the per-example errors averaged over seeds, each part scaled by its "
        "own t quantile (seeds − 1 degrees of freedom for the seed part). Methods with the same seed list are paired by seed and "
        "example; the others are compared as independent arms. Where fewer than 10 examples are wrong (or right) the interval is "
        "exact: Clopper–Pearson for one model, never narrower than it for a rate pooled over seeds.",
        "Why not a bootstrap over test examples alone: it ignores how much another training run would differ, so it is too narrow "
        "as soon as seeds disagree; and a cluster bootstrap over 3 seeds has only 10 distinct outcomes.",
    ]
    if one:
        text.append(f"Models with a single seed ({', '.join(one)}): alone, their interval covers test-set noise only ({EXAMPLES_ONLY}). "
                    f"Compared with a method of several seeds, a claim borrows that method's seed variance ({BORROWED}), so the "
                    "interval shows how wide a one-seed comparison is; the rule gives such a claim no reproduced / not reproduced "
                    f"verdict (it needs {study.spec.claims.min_seeds} seeds per arm).")
    return text


def claims_blocks(spec: StudySpec, proto: str, table) -> list[tuple]:
    eps, margin = spec.claims.eps, spec.claims.margin
    return [("h2", "Claims C1–C12"),
            ("p", f"Verdicts by the [rule]({proto}#verdict-rule) ([the claims]({proto}#claims)): difference = method − reference "
                  f"(negative favours the method), read at eps {eps:g}/255. A directional claim's p tests \"difference = 0\"; a \"no "
                  f"improvement\" claim's tests \"difference = −{margin:g}\" (the method better by the margin, one-sided: a method that is "
                  f"worse has no advantage). Not testable: every arm within {margin:g} pp of 100% or of 0%, or the claim's premise fails. "
                  f"Inconclusive before any test: an arm with fewer than {spec.claims.min_seeds} training seeds. The rows left are "
                  "judged together: p (Holm) is Holm's adjustment across them, and a verdict needs p (Holm) < 0.05. "
                  + (f"Not valid, before all of these: a [control]({proto}#controls) of the study misread (see Controls), so "
                     "no claim is judged; its numbers are still shown. " if spec.controls else "")
                  + "Every number of this table is in [data/claims.csv](data/claims.csv)."),
            ("table", table)]


def controls_blocks(readings: list[ControlReading], proto: str) -> list[tuple]:
    """The Controls section: one row per control, how it read and why ([] without controls)."""
    if not readings:
        return []
    rows = [{"Control": r.name, "Role": r.role.replace("-", " "), "Reads": r.verdict, "The evidence": r.said} for r in readings]
    return [("h2", "Controls"),
            ("p", f"Each control is attacked like a target and enters no claim ([the rule]({proto}#controls)). A positive control "
                  "(an adversarially trained model) must read robust: its white-box worst case under the strong suite clearly "
                  "below the ERM target's, off the ceiling, and no masking check failed. A negative control (a planted masked model) "
                  "must be flagged: a masking check failed on each of its checkpoints. The masking checks are every check but "
                  "\"converged\", which tests the attack's budget and fails on honest models too when it is small. If either "
                  "control misreads, every claim is \"not valid\"."),
            ("table", pd.DataFrame(rows))]


def checks_blocks(summary: str, grid, table, proto: str) -> list[tuple]:
    return [("h2", "Soundness checks"),
            ("p", f"{summary} (per checkpoint and suite; [each check explained]({proto}#checklist)). One cell per checkpoint and "
                  "check: the worst status over the suites that ran it, \"–\" where none did; hover over a cell (or tap it) for "
                  "every suite's numbers, or open the table below; every row, skipped ones too, is in "
                  "[data/checks.csv](data/checks.csv). A failed check makes every claim about that model \"not reproduced\"."),
            ("table", grid),
            ("fold", f"The numbers behind every check that ran ({len(table)} rows)", [("table", table)])]
