"""A study's numbers as frames: every error pooled over a method's seeds with its seed-level
interval (`robustmix.analysis.replication.error_interval`), in the shape `robustmix.reporting.tables.table3` and
`robustmix.reporting.figures.robustness_figure` read; the per-seed numbers; the models; the checks; the claims.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.comparisons import (
    METRIC_COLUMNS,
    column_label,
    error_rates,
    method_label,
)
from ..analysis.replication import error_interval
from ..attacks import CLEAN, NO_ATTACK, attack_label
from ..reporting.blocks import Tip
from ..reporting.tables import table3, with_intervals
from ..soundness.checks import CHECKS, GRADIENT, NOT_INFORMATIVE
from ..training.adversarial import resolve as resolve_adversarial
from ..evaluation.records import as_bool
from .claims import Claim, Study


def method_labels(study: Study) -> dict[str, str]:
    """Target name -> its row label: the method (with α, its options, and its epochs where they are not the
    targets' usual), or the name where labels repeat."""
    labels = {n: method_label({"method": c.method, "alpha": c.alpha,
                               "adversarial": resolve_adversarial(c).label if c.adversarial else None})
              for n, c in study.configs.items()}
    for n, c in study.configs.items():
        if c.method_options:
            labels[n] += " " + ", ".join(f"{k}={v}" for k, v in sorted(c.method_options.items()))
    usual = pd.Series([c.epochs for c in study.configs.values()]).mode().max() if study.configs else None
    for n, c in study.configs.items():
        if c.epochs != usual:  # e.g. Puzzle Mix's "half" variant: half the epochs, the same network evaluations
            labels[n] += f", {c.epochs} epochs"
        if n in study.controls:  # e.g. "ERM, head ×10000 (negative control)": a control is no method arm
            labels[n] += (f", head ×{c.head_scale:g}" if c.head_scale != 1 else "") + f" ({study.controls[n].replace('-', ' ')})"
    counts = pd.Series(list(labels.values())).value_counts()
    return {n: (m if counts[m] == 1 else f"{m} [{n}]") for n, m in labels.items()}


def pooled_frame(records: list[dict], study: Study) -> pd.DataFrame:
    """One row per target name × (setting, attack, eps) × metric: err, lo, hi pooled over its seeds
    (columns as analysis.error_intervals, plus seeds and the interval's method); an error rate's
    interval is clipped to [0, 100] (with two seeds the t quantile is 12.7 and the raw one can leave it)."""
    by = {}
    for r in records:
        by[(r["target"], r["setting"], r["attack"], round(r["eps_255"], 6))] = r
    cells = sorted({k[1:] for k in by}, key=lambda k: (k[0] != "clean", k[2], k[0], k[1]))
    rows = []
    for name, slots in study.slots.items():
        for setting, attack, eps in cells:
            recs = [by.get((s, setting, attack, eps)) for s in slots]
            if any(r is None for r in recs):
                continue
            for metric, col in METRIC_COLUMNS.items():
                iv = error_interval([r[col] for r in recs])
                rows.append({"target": name, "method": recs[0]["method"], "alpha": recs[0].get("alpha"), "setting": setting,
                             "attack": attack, "eps_255": eps, "surrogate": recs[0].get("surrogate"), "metric": metric,
                             "n": iv.n, "seeds": iv.seeds, "err": iv.estimate, "lo": max(0.0, iv.lo), "hi": min(100.0, iv.hi),
                             "interval": iv.method, **({"square_on": recs[0]["square_on"]} if recs[0].get("square_on") else {})})
    return pd.DataFrame(rows)


def table_at(frame: pd.DataFrame, labels: dict[str, str], eps: float, topk=(1, 5)) -> pd.DataFrame:
    """The paper's Table 3 layout at `eps`, cells "err [lo, hi]", only the requested top-k rows."""
    keep = [f"Top-{k}" for k in topk]
    t = with_intervals(table3(frame, labels, eps))
    return t[t.Metric.isin(keep)].reset_index(drop=True) if not t.empty else t


def per_seed_table(records: list[dict], eps: float) -> pd.DataFrame:
    """Table 3 at `eps` with one row per checkpoint (bare numbers)."""
    labels = {r["target"]: f"{method_label(r)} s{r.get('seed')}" for r in records}
    return table3(error_rates(records), labels, eps)


def all_eps_csv(frame: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Every eps's pooled table stacked (eps_255 first), with _lo/_hi columns: the data behind the report."""
    eps = sorted(set(frame.loc[frame.setting != "clean", "eps_255"]))
    parts = []
    for e in eps:
        t = table3(frame, labels, e)
        t.insert(0, "eps_255", e)
        parts.append(t)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def models_table(study: Study, metas: dict[str, dict]) -> pd.DataFrame:
    """One row per target name (and the surrogate): method, α, recipe, model, epochs, seeds,
    clean top-1 error per seed, training seconds per seed."""
    rows = []
    for name, slots in [*study.slots.items(), *[("surrogate", [s]) for s in metas if s.startswith("surrogate-")]]:
        ms = [metas[s] for s in slots]
        m = ms[0]
        rows.append({
            "Model": name, "Method": method_label(m), "Role": study.controls.get(name, "").replace("-", " ") or m.get("role"),
            "Recipe": m.get("recipe") or "none",
            "Network": m.get("model"), "Augment": m.get("augment"), "Epochs": m.get("epochs"),
            "Seeds": ", ".join(str(x.get("seed")) for x in ms),
            "Clean top-1 error per seed (%)": ", ".join(f"{x['clean_top1_err']:.2f}" for x in ms),
            "Train s per seed": ", ".join(f"{x.get('train_seconds', float('nan')):.0f}" for x in ms),
            "torch per seed": ", ".join(str(x.get("torch_version") or "–") for x in ms),
            # the training's own warnings, e.g. the catastrophic-overfitting guard's roll-back (a column only where one exists)
            **({"Training warnings": "; ".join(f"seed {x.get('seed')}: {w}" for x in ms for w in x["warnings"])}
               if any(x.get("warnings") for x in ms) else {}),
        })
    frame = pd.DataFrame(rows)
    return frame.fillna({"Training warnings": ""}) if "Training warnings" in frame else frame


def checks_table(checks: list[dict], protocol: str) -> pd.DataFrame:
    """One row per suite × checkpoint × check that ran (skipped ones are counted in the summary and
    listed in data/checks.csv), each linked to its explanation."""
    return pd.DataFrame([{"Suite": c["suite"], "Target": c["target"], "Check": f"[{c['check']}]({protocol}#check-{c['check']})",
                          "Status": c["status"].upper() if c["status"] == "fail" else c["status"], "The numbers": c["detail"]}
                         for c in checks if c["status"] != "skip"])


SEVERITY = ("skip", NOT_INFORMATIVE, "pass", "warn", "fail")  # a suite where the check could not fail shows only if no other ran it
MARK = {"pass": "pass", "warn": "warn", "fail": "FAIL", "skip": "–", NOT_INFORMATIVE: "not informative"}


def checks_grid(checks: list[dict], protocol: str) -> pd.DataFrame:
    """One row per checkpoint, one column per check that ran for any (linked to its explanation): the
    worst status over the suites that ran it, "–" where none did; each cell's note gives every
    suite's status and numbers (the rows of data/checks.csv)."""
    targets = list(dict.fromkeys(c["target"] for c in checks))
    ran = [k for k in CHECKS if any(c["check"] == k and c["status"] != "skip" for c in checks)]
    rows = []
    for t in targets:
        row = {"Checkpoint": t}
        for k in ran:
            mine = [c for c in checks if c["target"] == t and c["check"] == k]
            status = max((c["status"] for c in mine), key=SEVERITY.index, default="skip")
            note = "\n".join(f"{c['suite']} suite: {c['status']}: {c['detail']}" for c in mine)
            row[f"[{k}]({protocol}#check-{k})"] = Tip(MARK[status], note, f"st st-{status.replace(' ', '-')}")
        rows.append(row)
    return pd.DataFrame(rows, dtype=object)


def seed_notes(table: pd.DataFrame, records: list[dict], study: Study, labels: dict[str, str], eps: float) -> pd.DataFrame:
    """`table_at`'s table with each pooled cell of a several-seed method a Tip of its per-seed values
    ("per seed (0, 1, 2): 63.08, 64.42, 63.96"), the numbers of data/table3-per-seed.csv."""
    slot_of = {s: n for n, slots in study.slots.items() for s in slots}
    frame = pd.DataFrame([{"attack": r["attack"], **({"square_on": r["square_on"]} if r.get("square_on") else {})} for r in records])
    column = {column_label(frame, a): a for a in set(frame.attack)} if not frame.empty else {}
    per: dict[tuple, dict[str, float]] = {}
    for r in records:
        if r["target"] in slot_of and (r["setting"] == CLEAN or abs(r["eps_255"] - eps) < 1e-6):
            for m, label in (("top1", "Top-1"), ("top5", "Top-5")):
                per.setdefault((slot_of[r["target"]], r["setting"], r["attack"], label), {})[r["target"]] = r[f"{m}_err"]
    name_of = {lab: n for n, lab in labels.items()}
    out = table.astype(object)
    for i, row in table.iterrows():
        name = name_of.get(row["Method"])
        if name is None or len(study.slots[name]) < 2:
            continue
        for col in table.columns[3:]:
            attack = column.get(col)
            key = (name, CLEAN, NO_ATTACK, row["Metric"]) if attack == NO_ATTACK else (name, row["Setting"], attack, row["Metric"])
            vals = per.get(key, {})
            if attack is not None and all(s in vals for s in study.slots[name]):
                out.at[i, col] = Tip(str(row[col]), f"per seed ({', '.join(map(str, study.seeds[name]))}): "
                                     + ", ".join(f"{vals[s]:.2f}" for s in study.slots[name]))
    return out


def survivors(records: list[dict], study: Study, name: str, eps: float, metric: str) -> tuple[int, int] | None:
    """(fooled, survivors) of Square run on survivors, summed over a target's seeds: the examples no
    white-box gradient attack fooled (top-1, as the evaluator picks them) and how many of them Square
    fooled; None without such Square records."""
    index = {(r["target"], r["attack"]): r for r in records if r["setting"] == "white-box" and abs(r["eps_255"] - eps) < 1e-6}
    fooled = alive_n = 0
    for slot in study.slots[name]:
        sq = index.get((slot, "square"))
        grads = [index[(slot, a)] for a in GRADIENT if (slot, a) in index]
        if sq is None or sq.get("square_on") != "survivors" or not grads:
            return None
        alive = np.logical_and.reduce([as_bool(g["top1_correct"]) for g in grads])
        fooled += int((alive & ~as_bool(sq[f"{metric}_correct"])).sum())
        alive_n += int(alive.sum())
    return fooled, alive_n


def square_honest(table: pd.DataFrame, records: list[dict], study: Study, labels: dict[str, str], eps: float) -> pd.DataFrame:
    """The strong table with Square-on-survivors cells saying what Square did ("fooled 0 of 2 survivors"):
    it ran only on the examples no gradient attack fooled, the others kept their clean image, so its error
    rate is the clean error by construction and reads like a bug. The rate stays in data/strong.csv."""
    col = attack_label("square", "survivors")
    if table.empty or col not in table.columns:
        return table
    name_of = {lab: n for n, lab in labels.items()}
    out = table.astype(object)
    for i, row in table.iterrows():
        name = name_of.get(row["Method"])
        got = survivors(records, study, name, eps, "top5" if row["Metric"] == "Top-5" else "top1") if name else None
        if got is not None:
            seeds = len(study.slots[name])
            out.at[i, col] = Tip(f"fooled {got[0]} of {got[1]} survivors" if got[1] else "no survivors to attack",
                                 f"Square ran only on the {got[1]} example(s) that no gradient attack fooled"
                                 f"{f' (summed over {seeds} seeds)' if seeds > 1 else ''}; the others kept their clean image, "
                                 f"so its error rate ({row[col]}) is the clean error by construction (data/strong.csv)")
    return out


def checks_summary(checks: list[dict]) -> str:
    counts = pd.Series([c["status"] for c in checks]).value_counts().to_dict() if checks else {}
    failed = sorted({f"{c['check']} ({c['target']}, {c['suite']})" for c in checks if c["status"] == "fail"})
    return (f"{counts.get('pass', 0)} pass, {counts.get('warn', 0)} warn, {counts.get('fail', 0)} fail, {counts.get('skip', 0)} skipped"
            + (f", {counts[NOT_INFORMATIVE]} not informative (at the ceiling, where the check could not fail)" if counts.get(NOT_INFORMATIVE) else "")
            + (f"; failed: {', '.join(failed)}" if failed else ""))


def fmt(v: float | None, unit: str = "pp") -> str:
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:+.1f}" if unit == "pp" else f"{v:+.3g}"


def p_text(p: float | None) -> str:
    return f"{p:.2g}" if p is not None and np.isfinite(p) else "–"


def verdict_text(c: Claim) -> str:
    """"**inconclusive**: 1 seed (...)": the verdict, and why where it was decided before any test."""
    return f"**{c.verdict}**" + (f": {c.reason}" if c.reason else "")


def claims_table(claims: list[Claim], protocol: str) -> pd.DataFrame:
    rows = []
    for c in claims:
        measured = c.difference is not None
        rows.append({
            "Claim": f"[{c.claim}]({protocol}#{c.anchor})", "What": c.part,
            "Verdict": verdict_text(c), "Rule": c.rule if measured else "–",
            "Difference": f"{fmt(c.difference, c.unit)} {c.unit}" if measured else "–",
            "95% seed-level interval": f"[{fmt(c.lo, c.unit)}, {fmt(c.hi, c.unit)}]" if measured else "–",
            "p": p_text(c.p_value) if measured else "–", "p (Holm)": p_text(c.p_holm),
            "Rests on": c.rests_on or "–", "Note": c.note or "–",
        })
    return pd.DataFrame(rows)


def ece_table(calib: pd.DataFrame, study: Study, labels: dict[str, str]) -> pd.DataFrame:
    """ECE (%) per method: per seed and the mean over seeds."""
    ece = calib.groupby("checkpoint", sort=False).ece.first().to_dict()
    rows = []
    for name, slots in study.slots.items():
        vals = [ece[s] for s in slots if s in ece]
        if vals:
            rows.append({"Method": labels[name], "ECE per seed (%)": ", ".join(f"{v:.2f}" for v in vals),
                         "Mean ECE (%)": f"{np.mean(vals):.2f}", "Examples": int(calib.n.iloc[0])})
    return pd.DataFrame(rows)


def attack_names(frame: pd.DataFrame) -> str:
    return ", ".join(dict.fromkeys(column_label(frame, a) for a in frame.attack if a != "none"))
