"""Records -> the paper's Table 3 layout. Errors in percent.

Rows: setting (white-box, black-box) × metric (top-1, top-5) × method; columns: clean, then one
per attack (FGSM, I-FGSM); one table per eps, built by `table3` alone. `render_markdown` gives the
bare numbers; `evidence` + `render_report_markdown`/`report_csv`/`report_latex`/`report_json` add a 95%
interval to every error and a paired test (exact McNemar, Holm-adjusted) to every pair of
targets, and print "X is more robust than Y" only where that test is significant.
"""

from __future__ import annotations

import pandas as pd

from ..analysis.comparisons import (
    METRIC_LABELS,
    SIGNIFICANCE,
    column_label,
    error_intervals,
    error_rates,
    paired_comparisons,
    row_labels,
)
from ..attacks import ATTACKS, CLEAN, NO_ATTACK, RECORD_ATTACKS, SETTINGS, attack_label
from ..soundness.checks import soundness_checks
from ..soundness.verdicts import sound_verdicts
from .text import render_checks, render_verdicts


def table3(frame: pd.DataFrame, labels: dict[str, str], eps_255: float) -> pd.DataFrame:
    """One eps's Table 3: columns Setting, Metric, Method, then Clean and one per attack present
    (FGSM, I-FGSM), error in %; when `frame` has intervals (lo, hi), each of those columns is
    followed by <col>_lo and <col>_hi.

    `frame` has one row per record × metric: `analysis.error_rates(records)` (bare numbers) or
    `analysis.error_intervals(records)` (with intervals); eps is matched on the 0–255 scale."""
    fields = (("", "err"), ("_lo", "lo"), ("_hi", "hi")) if {"lo", "hi"} <= set(frame.columns) else (("", "err"),)
    clean = frame[frame.setting == CLEAN]
    adv = frame[(frame.setting != CLEAN) & ((frame.eps_255 - eps_255).abs() < 1e-6)]
    attacks = [a for a in RECORD_ATTACKS if (adv.attack == a).any()]
    names = {NO_ATTACK: attack_label(NO_ATTACK), **{a: column_label(adv, a) for a in attacks}}
    rows = []
    for setting in SETTINGS:
        sub = adv[adv.setting == setting]
        for metric, metric_label in METRIC_LABELS.items():
            for t in dict.fromkeys(sub.target):
                row = {"Setting": setting, "Metric": metric_label, "Method": labels[t]}
                for attack, part in [(NO_ATTACK, clean), *[(a, sub[sub.attack == a]) for a in attacks]]:
                    hit = part[(part.target == t) & (part.metric == metric)]
                    for suffix, field in fields:
                        row[names[attack] + suffix] = float(hit[field].iloc[0]) if len(hit) else float("nan")
                rows.append(row)
    return pd.DataFrame(rows)


def eps_255_values(frame: pd.DataFrame) -> list[float]:
    """The eps (0–255 scale) of the attacked rows of a frame, ascending."""
    return sorted(set(frame.loc[frame.setting != CLEAN, "eps_255"]))


def markdown(df: pd.DataFrame, digits: int = 1, left: tuple[str, ...] = ("Setting", "Metric", "Method")) -> str:
    """A GitHub Markdown table; repeated Setting/Metric cells are left blank, as in the paper.
    Columns named in `left` are left-aligned, the others right-aligned."""
    cols = list(df.columns)
    align = ["---" if c in left else "---:" for c in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(align) + "|"]
    prev: tuple = ()
    for row in df.itertuples(index=False):
        cells = ["–" if isinstance(v, float) and pd.isna(v) else f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row]
        group = (getattr(row, "Setting", None), getattr(row, "Metric", None))
        shown = list(cells)
        if "Setting" in cols and prev[:1] == group[:1]:
            shown[cols.index("Setting")] = ""
        if "Metric" in cols and prev == group:
            shown[cols.index("Metric")] = ""
        prev = group
        lines.append("| " + " | ".join(shown) + " |")
    return "\n".join(lines)


def render_markdown(records: list[dict]) -> str:
    """Every eps's table (bare numbers), each under a heading that states the eps on both scales."""
    frame, labels = error_rates(records), row_labels(records)
    parts = []
    for e in eps_255_values(frame):
        parts.append(f"eps = {e:g}/255 (= {e / 255:.4f} in [0, 1] units){iterations_note(records, ', ')}; top-1/top-5 error, %\n")
        parts.append(markdown(table3(frame, labels, e)))
        parts.append("")
    return "\n".join(parts).rstrip() + "\n" + strong_note(records)


def strong_note(records: list[dict]) -> str:
    """One line stating the strong attacks' budget, when any ran ('' otherwise)."""
    last = {r["attack"]: r for r in records}
    said = []
    if "pgd" in last:
        it = last["pgd"]["iters"]
        said.append(f"PGD {it} steps of 2.5·eps/{it} × {last['pgd'].get('restarts')} restart(s)")
    said += [f"{attack_label(a)} {last[a]['iters']} iterations" for a in ("apgd-ce", "apgd-dlr") if a in last]
    if "square" in last:
        on = " on the examples no gradient attack fooled (the others keep x)" if last["square"].get("square_on") == "survivors" else ""
        said.append(f"Square {last['square'].get('queries')} queries{on}")
    if not said:
        return ""
    seed = next(last[a].get("attack_seed") for a in ("pgd", "apgd-ce", "apgd-dlr", "square") if a in last)
    worst = "; worst case: wrong under any attack (the number to quote)" if "worst-case" in last else ""
    nested = sorted({attack_label(r["attack"]) for r in records if r.get("nested") and r["attack"] in ATTACKS})  # not the combined records
    nest = (f"; nested over eps ({', '.join(nested)}): above the smallest eps each attacked only the examples it left at the smaller "
            "one, the others keep the image that fooled them there (top-1 error at least a stand-alone run's)") if nested else ""
    return f"\n{', '.join(said)}; seed {seed}{worst}{nest}.\n"


def iterations_note(records: list[dict], lead: str) -> str:
    """E.g. ", I-FGSM 10 iterations (step eps/10)": each iterative attack whose records share one
    iteration count."""
    notes = []
    for name in ("ifgsm",):  # the strong attacks' budgets: strong_note
        iters = sorted({r["iters"] for r in records if r["attack"] == name})
        if len(iters) == 1:
            notes.append(f"{attack_label(name)} {iters[0]} iterations (step eps/{iters[0]})")
    return lead + ", ".join(notes) if notes else ""


# --- Table 3 with 95% intervals and paired tests (the `robustmix report` evidence) --------------

REPORT_FORMATS = ("markdown", "csv", "latex", "json")


def evidence(records: list[dict], *, level: float = 0.95, n_boot: int = 2000, seed: int = 0, interval: str = "bootstrap",
             probes: list[dict] = ()) -> dict:
    """Everything a report shows: {"intervals": one row per record × metric with err, lo, hi
    (seeded bootstrap over test examples, or Wilson), "comparisons": every pair of targets on the same
    examples with the paired difference, its interval, exact McNemar and Holm-adjusted p-values
    and a verdict only where significant, judged by the soundness checks (columns status and
    sound_verdict, `robustmix.soundness.verdicts.sound_verdicts`), "checks": the soundness checks of records + probes,
    "labels": target -> row label, plus the settings}.

    Examples:
        >>> import robustmix
        >>> from robustmix.data import load_dataset
        >>> from robustmix import EvalConfig, evaluate
        >>> from robustmix.reporting import evidence
        >>> data = load_dataset("digits")
        >>> erm = robustmix.import_model(robustmix.train(robustmix.TrainConfig(epochs=1, device="cpu"))[0], "digits", name="a")
        >>> mix = robustmix.import_model(robustmix.train(robustmix.TrainConfig(method="mixup", epochs=1, device="cpu"))[0],
        ...                              "digits", name="b", method="mixup", alpha=1.0)
        >>> records = evaluate([erm, mix], data.x_test, data.y_test, EvalConfig(eps=(16 / 255,), settings=("white-box",)))
        >>> ev = evidence(records, n_boot=200)
        >>> sorted(ev)
        ['checks', 'comparisons', 'interval', 'intervals', 'labels', 'level', 'n_boot', 'seed']
        >>> ev["intervals"].query("attack == 'fgsm' and metric == 'top1'")[["target", "err", "lo", "hi"]].shape
        (2, 4)
    """
    labels = row_labels(records)
    intervals = error_intervals(records, level=level, n_boot=n_boot, seed=seed, interval=interval)  # refuses records without bits
    checks = soundness_checks(records + list(probes))
    comparisons = paired_comparisons(records, labels=labels, level=level)
    return {
        "labels": labels,
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
        "interval": interval,
        "intervals": intervals,
        "comparisons": sound_verdicts(comparisons, checks, records),
        "checks": checks,
    }


def with_intervals(df: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Fold <col>, <col>_lo, <col>_hi into one text cell '75.2 [72.1, 78.3]'."""
    out = df[[c for c in df.columns if not c.endswith(("_lo", "_hi"))]].copy()
    for c in out.columns:
        if c + "_lo" in df.columns:
            out[c] = [
                "–" if pd.isna(v) else f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
                for v, lo, hi in zip(df[c], df[c + "_lo"], df[c + "_hi"])
            ]
    return out


def comparisons_table(ev: dict, eps_255: float | None) -> pd.DataFrame:
    """The paired tests for one eps (None: the clean comparisons), ready to print."""
    cmp = ev["comparisons"]
    if cmp.empty:
        return cmp
    sub = cmp[cmp.setting == CLEAN] if eps_255 is None else cmp[(cmp.setting != CLEAN) & ((cmp.eps_255 - eps_255).abs() < 1e-6)]
    return pd.DataFrame(
        {
            "Setting": sub.setting,
            "Attack": [column_label(ev["intervals"], a) for a in sub.attack],
            "Metric": [m.replace("top", "Top-") for m in sub.metric],
            "A": sub.method_a,
            "B": sub.method_b,
            "B − A (points)": [f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]" for d, lo, hi in zip(sub["diff"], sub.lo, sub.hi)],
            "p (McNemar)": [f"{p:.2g}" for p in sub.p_value],
            "p (Holm)": [f"{p:.2g}" for p in sub.p_holm],
        }
    )


def render_report_markdown(ev: dict, records: list[dict]) -> str:
    """Table 3 with 95% intervals for every eps, then the paired tests and only the verdicts the
    data supports."""
    level = f"{100 * ev['level']:g}%"
    note = iterations_note(records, "; ")
    n = sorted({r["n"] for r in records})
    how = (
        f"bootstrap intervals over the {'/'.join(map(str, n))} test examples (seed {ev['seed']}, {ev['n_boot']} resamples; "
        "exact Clopper–Pearson intervals where fewer than 10 examples are wrong or right)"
        if ev.get("interval", "bootstrap") == "bootstrap"
        else f"Wilson score intervals over the {'/'.join(map(str, n))} test examples"
    )
    parts = [f"Error rates in % with {level} {how}{note}.\n"]
    for e in eps_255_values(ev["intervals"]):
        parts += [f"### eps = {e:g}/255 (= {e / 255:.4f} in [0, 1] units)\n", markdown(with_intervals(table3(ev["intervals"], ev["labels"], e))), ""]
    cmp = ev["comparisons"]
    if cmp.empty:
        parts.append("No paired tests: a paired test needs two or more targets evaluated on the same examples.")
        return "\n".join(parts).rstrip() + "\n"
    parts.append(
        f"## Paired tests (same examples): difference of error rates B − A in points with its {level} interval, "
        "exact McNemar p-value, and Holm-adjusted p over all the tests below\n"
    )
    for e in [None, *eps_255_values(ev["intervals"])]:
        t = comparisons_table(ev, e)
        if not t.empty:
            parts += [CLEAN if e is None else f"eps = {e:g}/255", "", markdown(t, left=("Setting", "Attack", "Metric", "A", "B")), ""]
    if len({r["attack"] for r in records if r["setting"] != CLEAN}) > 1:
        parts += ["## Soundness checks (each explained in robustmix's docs/protocol.md)\n", render_checks(ev["checks"])]
    parts.append(f"## Verdicts about these checkpoints (Holm-adjusted p < {SIGNIFICANCE:g}, judged by the soundness checks)\n")
    parts.append(render_verdicts(cmp, alpha=SIGNIFICANCE))
    return "\n".join(parts).rstrip() + "\n"


def report_csv(ev: dict) -> pd.DataFrame:
    """All eps stacked (eps_255 first), each cell with _lo/_hi interval columns."""
    frames = []
    for e in eps_255_values(ev["intervals"]):
        df = table3(ev["intervals"], ev["labels"], e)
        df.insert(0, "eps_255", e)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def report_latex(ev: dict) -> str:
    """One booktabs table per eps in the paper's layout, cells 'err [lo, hi]' (pandas to_latex)."""
    parts = []
    for e in eps_255_values(ev["intervals"]):
        df = with_intervals(table3(ev["intervals"], ev["labels"], e))
        body = df.to_latex(index=False, escape=True, column_format="lll" + "r" * (len(df.columns) - 3))
        body = body.replace("α", r"$\alpha$")
        caption = f"Top-1/top-5 error (\\%) at $\\epsilon = {e:g}/255$ with {100 * ev['level']:g}\\% {ev.get('interval', 'bootstrap')} intervals."
        parts.append("\\begin{table}[t]\n\\centering\n" + body + f"\\caption{{{caption}}}\n\\end{{table}}\n")
    return "\n".join(parts)


def report_json(ev: dict, config: dict | None = None) -> dict:
    """The report as one JSON document (intervals and paired tests as lists of rows)."""
    return {
        "format": "robustmix-report/1",
        "level": ev["level"],
        "n_boot": ev["n_boot"],
        "seed": ev["seed"],
        "interval": ev.get("interval", "bootstrap"),
        "labels": ev["labels"],
        "results_config": config or {},
        "intervals": ev["intervals"].to_dict(orient="records"),
        "comparisons": ev["comparisons"].to_dict(orient="records"),
        "checks": [c.to_dict() for c in ev.get("checks", [])],
    }
