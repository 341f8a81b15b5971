"""The soundness checks and the verdicts as text: what `robustmix attack` and `robustmix report`
print after the tables."""

from __future__ import annotations

import pandas as pd

from ..analysis.comparisons import paired_comparisons, row_labels
from ..attacks import WORST, suite_text
from ..soundness.checks import STATUSES, Check, soundness_checks
from ..soundness.verdicts import CHECKPOINTS_ONLY, STATUS, sound_verdicts


def render_checks(checks: list[Check]) -> str:
    """The checks as a Markdown table, one row per target × check, each with the place of its
    explanation in robustmix's docs/protocol.md (as text, not a link: a report can be written
    anywhere, where a relative link would break), and a summary line per target."""
    if not checks:
        return "No soundness checks: they run on an evaluation with more than one attack.\n"
    lines = ["| Target | Check | Status | The numbers behind it | Explained in |", "|---|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c.target} | {c.check} | {c.status.upper() if c.status == 'fail' else c.status} | {c.detail} | {c.link} |")
    lines.append("")
    for target in dict.fromkeys(c.target for c in checks):
        mine = [c for c in checks if c.target == target]
        counts = {s: sum(c.status == s for c in mine) for s in STATUSES}
        bad = [c.check for c in mine if c.status == "fail"]
        lines.append(f"- {target}: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail, {counts['skip']} skipped"
                     + (f" — failed: {', '.join(bad)}: its robustness numbers may come from gradient masking" if bad else ""))
    return "\n".join(lines) + "\n"


def render_verdicts(df: pd.DataFrame, *, alpha: float = 0.05) -> str:
    """The verdicts to print (Markdown list): every claim a significant paired test makes, with
    what the checks and the worst case say about it; then a note when no strong attack ran."""
    if df.empty:
        return "- No paired tests: a paired test needs two or more targets evaluated on the same examples.\n"
    claims = df[df.status != ""]
    if claims.empty:
        return ("- No difference between the checkpoints is significant: this data does not show either to be more robust.\n\n"
                + CHECKPOINTS_ONLY + "\n")
    order = {s: i for i, s in enumerate(STATUS)}
    lines = [f"- **{row.status}**: {row.sound_verdict}" for row in sorted(claims.itertuples(index=False), key=lambda r: order[r.status])]
    if (claims.status == "paper suite only").any():
        lines.append(f"\nThese verdicts rest on FGSM/I-FGSM alone (Holm-adjusted p < {alpha:g}); run `robustmix attack --suite strong` "
                     f"for {suite_text('strong', beyond='paper')}.")
    lines.append("\n" + CHECKPOINTS_ONLY)
    return "\n".join(lines) + "\n"


def soundness(records: list[dict], probes: list[dict]) -> tuple[list, object]:
    """(checks, verdicts frame) of an evaluation's records and probe records."""
    checks = soundness_checks(records + probes)
    return checks, sound_verdicts(paired_comparisons(records, labels=row_labels(records)), checks, records)


def soundness_markdown(records: list[dict], probes: list[dict]) -> str:
    """The checks and the verdicts, as printed after the tables."""
    if len({r["attack"] for r in records if r["setting"] != "clean"} - {WORST}) < 2:
        return ""
    checks, verdicts = soundness(records, probes)
    return ("\n## Soundness checks (docs/protocol.md)\n\n" + render_checks(checks)
            + "\n## Verdicts about these checkpoints (paired tests, Holm-adjusted p < 0.05, judged by the checks)\n\n"
            + render_verdicts(verdicts))
