"""Records -> the paper's Table 3 layout. No torch needed.

Rows: setting (white-box, black-box) × metric (top-1, top-5) × method; columns: clean, then one
per attack (FGSM, I-FGSM); one table per eps. Errors in percent.
"""

from __future__ import annotations

import pandas as pd

from .evaluate import ATTACK_LABELS

METRICS = {"top1_err": "Top-1", "top5_err": "Top-5"}


def row_labels(records: list[dict]) -> dict[str, str]:
    """Target name -> label: its method (with alpha), or the target's name where methods repeat."""
    methods: dict[str, str] = {}
    for r in records:
        m = r["method"] if r["method"] == "erm" else f"{r['method']} (α={r['alpha']:g})"
        methods[r["target"]] = "ERM" if m == "erm" else m
    counts = pd.Series(list(methods.values())).value_counts()
    return {t: (m if counts[m] == 1 else f"{m} [{t}]") for t, m in methods.items()}


def table3(records: list[dict], eps: float) -> pd.DataFrame:
    """One eps's Table 3 as a DataFrame with columns Setting, Metric, Method, Clean, FGSM, I-FGSM."""
    labels = row_labels(records)
    clean = {r["target"]: r for r in records if r["setting"] == "clean"}
    adv = [r for r in records if r["setting"] != "clean" and abs(r["eps"] - eps) < 1e-9]
    attacks = [a for a in ATTACK_LABELS if any(r["attack"] == a for r in adv)]
    rows = []
    for setting in ("white-box", "black-box"):
        sub = [r for r in adv if r["setting"] == setting]
        if not sub:
            continue
        targets = list(dict.fromkeys(r["target"] for r in sub))
        for metric, metric_label in METRICS.items():
            for t in targets:
                row = {"Setting": setting, "Metric": metric_label, "Method": labels[t]}
                row["Clean"] = clean[t][metric] if t in clean else float("nan")
                for a in attacks:
                    hit = [r for r in sub if r["target"] == t and r["attack"] == a]
                    row[ATTACK_LABELS[a]] = hit[0][metric] if hit else float("nan")
                rows.append(row)
    return pd.DataFrame(rows)


def eps_values(records: list[dict]) -> list[float]:
    return sorted({r["eps"] for r in records if r["setting"] != "clean"})


def markdown(df: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub Markdown table; repeated Setting/Metric cells are left blank, as in the paper."""
    cols = list(df.columns)
    align = ["---" if c in ("Setting", "Metric", "Method") else "---:" for c in cols]
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
    """Every eps's table, each under a heading that states the eps on both scales."""
    parts = []
    for e in eps_values(records):
        iters = sorted({r["iters"] for r in records if r["attack"] == "ifgsm"})
        note = f", I-FGSM {iters[0]} iterations (step eps/{iters[0]})" if len(iters) == 1 else ""
        parts.append(f"eps = {e * 255:g}/255 (= {e:.4f} in [0, 1] units){note}; top-1/top-5 error, %\n")
        parts.append(markdown(table3(records, e)))
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def table_csv(records: list[dict]) -> pd.DataFrame:
    """All eps stacked, with an eps_255 column, for CSV output."""
    frames = []
    for e in eps_values(records):
        df = table3(records, e)
        df.insert(0, "eps_255", round(e * 255, 6))
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
