"""The study report, rebuilt from the stored results every time (cheap): DIR/README.md,
DIR/report.html (self-contained), DIR/figures/*.png, DIR/data/*.csv and DIR/study.json (every
number in the report, the spec, the command, versions, processor, device and wall times).

Numbers come from the results files (`robustmix.study.attacking`); pooled errors and every difference
carry the seed-level interval of `robustmix.analysis.replication`; the drawing is `robustmix.reporting.figures` and
`robustmix.analysis.curves`, the Table 3 layout `robustmix.reporting.tables.table3`.
"""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..analysis.curves import curves_figure, curves_frame, read_history
from ..reporting.blocks import to_markdown
from ..reporting.figures import dots_figure, figure2, reliability_figure, robustness_figure, save_png, several_eps
from ..reporting.page import to_html
from ..runtime import files
from ..runtime.devices import processor
from ..runtime.errors import RobustmixError
from ..runtime.version import __version__
from ..soundness.checks import soundness_checks
from ..store.checkpoint import read_meta
from ..store.results import load_results
from .attacking import models_of, place, results_path, transfer_seconds
from .claims import Study, judge_claims, read_controls
from .headline import (
    SMOOTHING_NOTE,
    data_identity,
    headline_blocks,
    headline_text,
    recipe_scope,
    scrub,
    torch_versions,
)
from .probing import probe_path
from .render import (
    NOTES_TITLE,
    checks_blocks,
    claims_blocks,
    controls_blocks,
    protocol_notes,
    suites_text,
    uncertainty_text,
    verdict_panel,
)
from .spec import StudySpec
from .tables import (
    all_eps_csv,
    checks_grid,
    checks_summary,
    checks_table,
    claims_table,
    ece_table,
    method_labels,
    models_table,
    per_seed_table,
    pooled_frame,
    seed_notes,
    square_honest,
    table_at,
)
from .training import rebuilds_path

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def protocol_link(out: Path) -> str:
    """docs/protocol.md relative to the report folder (a working link inside the repository), else its name."""
    if PROTOCOL.is_file():
        return Path(os.path.relpath(PROTOCOL, Path(out).resolve())).as_posix()
    return "docs/protocol.md"


FIGURES = {"robustness-paper", "strong-suite", "robustness-strong", "figure2", "calibration", "training-curves"}


def hide_paths(text: str, spec: StudySpec, out: Path) -> str:
    """`text` with no machine path: the data's folder as $DATA (headline.scrub), and the report's folder,
    where it was given as an absolute path, as its path from the current folder (when inside it) or
    as $OUT (a report names its own folder's content, never where it was written)."""
    text = scrub(text, spec)
    where = Path(out).resolve()
    try:
        shown = where.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        shown = "$OUT"
    for spelling in sorted({str(out), str(where)}, key=len, reverse=True):
        if Path(spelling).is_absolute():
            text = text.replace(spelling, shown)
    return text


def portable_command(command: str, spec: StudySpec, out: Path) -> str:
    """The command as a report prints it: hide_paths, then any other absolute path (e.g. the spec's) as
    its path from the current folder when inside it, else ".../NAME"."""
    here = Path.cwd().resolve()

    def short(token: str) -> str:
        if not Path(token).is_absolute():
            return token
        try:
            return Path(token).resolve().relative_to(here).as_posix()
        except ValueError:
            return f".../{Path(token).name}"

    return " ".join(short(t) for t in hide_paths(command, spec, out).split(" "))


def clean(obj):
    """JSON without NaN/inf (they become null), floats rounded to 10 significant digits."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(f"{obj:.10g}") if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def load_suite(spec: StudySpec, out: Path, suite: str) -> tuple[list[dict], list[dict], list[tuple[float, str]]]:
    """(records, checks tagged with the suite, (attack seconds, where) per file) of every target's results
    file (and of the surrogate's examples, crafted once per suite)."""
    records, checks, seconds = [], [], []
    for m in models_of(spec, out):
        if m.name == "surrogate":
            continue
        path = results_path(out, suite, m.slot)
        if not path.is_file():
            raise RobustmixError(f"{path} is missing: run the attack stage first (robustmix study SPEC --out DIR --stage attack)")
        doc = load_results(path)  # read under the counting rule, so the checks are recomputed from what it reads
        records += doc["records"]
        checks += [{**c.to_dict(), "suite": suite} for c in soundness_checks(doc["records"] + doc.get("probes", []))]
        seconds.append((float((doc.get("config") or {}).get("seconds", 0.0)), place(doc.get("config"))))
    return records, checks, seconds + [transfer_seconds(spec, out, suite)]


def draw(out: Path, spec: StudySpec, study: Study, labels: dict, paper: pd.DataFrame, strong: pd.DataFrame,
         metas: dict[str, dict]) -> list[tuple]:
    """Write the figures; returns their ("img", path, alt) blocks by name."""
    figs, band = {}, "95% seed-level interval"
    figs["robustness-paper"] = robustness_figure(paper, labels, metric="top1", band=band)  # the dot plot at one eps
    if not strong.empty:
        at = spec.claims.eps if (abs(strong.eps_255 - spec.claims.eps) < 1e-6).any() else None
        figs["strong-suite"] = dots_figure(strong, labels, metric="top1", band=band, eps=at)
        if several_eps(strong):
            figs["robustness-strong"] = robustness_figure(strong, labels, metric="top1", band=band)
    data = out / "data"
    if (data / "figure2.csv").is_file():
        f2 = pd.read_csv(data / "figure2.csv")
        slot_label = {s: labels[n] for n, slots in study.slots.items() for s in slots}
        f2 = f2[f2.checkpoint.isin(slot_label)].assign(checkpoint=lambda d: d.checkpoint.map(slot_label))
        pooled = f2.groupby(["checkpoint", "lam"], sort=False).agg(
            miss_rate=("miss_rate", "mean"), grad_norm=("grad_norm", "mean"), n_pairs=("n_pairs", "first"),
            seed=("seed", "first"), distinct_labels=("distinct_labels", "first")).reset_index()
        figs["figure2"] = figure2(pooled)
    if (data / "calibration.csv").is_file():
        calib = pd.read_csv(data / "calibration.csv")
        first = {slots[0]: f"{labels[n]} ({slots[0]})" for n, slots in study.slots.items()}
        sub = calib[calib.checkpoint.isin(first)].assign(checkpoint=lambda d: d.checkpoint.map(first))
        figs["calibration"] = reliability_figure(sub)
    runs = {m.slot: read_history(m.folder) for m in models_of(spec, out)}
    frame = curves_frame(runs)
    files.write_text(data / "training-curves.csv", frame.to_csv(index=False))
    figs["training-curves"] = curves_figure(frame)
    for name, fig in figs.items():
        save_png(fig, out / "figures" / f"{name}.png")
    for name in FIGURES - set(figs):  # one an earlier report drew (e.g. two-point curves) is not left behind
        (out / "figures" / f"{name}.png").unlink(missing_ok=True)
    said = {"robustness-paper": "Paper suite: top-1 error " + ("vs eps" if several_eps(paper) else "per attack") + f", pooled over seeds ({band})",
            "strong-suite": f"Strong suite: top-1 error per attack and method, pooled over seeds ({band}); the worst case emphasised",
            "robustness-strong": f"Strong suite: top-1 error vs eps ({band})",
            "figure2": "Figure 2: (a) misses and (b) input-gradient norms between pairs of training examples, mean over seeds",
            "calibration": "Reliability diagrams, first seed of each method (examples per bin beneath)",
            "training-curves": "Training curves per checkpoint, from its training log"}
    return {name: ("img", f"figures/{name}.png", said[name]) for name in figs}


def trained_on(metas: dict[str, dict]) -> dict[str, int]:
    """{processor (kernel level): number of checkpoints} from their meta.json (a study may span machines)."""
    out: dict[str, int] = {}
    for m in metas.values():
        key = f"{m.get('processor') or 'unknown'}" + (f" ({m['cpu_kernels']})" if m.get("cpu_kernels") else "")
        out[key] = out.get(key, 0) + 1
    return out


def probe_places(out: Path, metas: dict[str, dict]) -> list[tuple[float, str]]:
    """(seconds, where) of each model's probes (data/probes/<slot>.json)."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in (probe_path(out, s) for s in metas) if p.is_file()]
    return [(float(d.get("seconds") or 0), place(d)) for d in docs]


def compute_places(metas: dict[str, dict], attacks: list[tuple[float, str]], rebuilds: list[dict]) -> dict[str, float]:
    """{where: seconds} of a study's compute: each checkpoint's training on the processor it records, each
    suite's attacks where its results file says they ran, and rebuilds where they were logged. A study may
    span machines (a GPU for some models, a CPU for others), so no single processor stands for its cost."""
    by: dict[str, float] = {}
    for m in metas.values():
        by[place(m)] = by.get(place(m), 0.0) + float(m.get("train_seconds") or 0)
    for seconds, where in attacks + [(float(r.get("seconds") or 0), place(r)) for r in rebuilds]:
        if seconds:
            by[where] = by.get(where, 0.0) + seconds
    return {k: round(v, 3) for k, v in by.items()}


def build_report(spec: StudySpec, out: Path, *, command: str, device: str, walls: dict) -> dict:
    """Write README.md, report.html, figures, data and study.json; returns study.json's content."""
    out = Path(out)
    proto = protocol_link(out)
    metas = {m.slot: read_meta(m.folder, need_weights=False) for m in models_of(spec, out)}
    paper_records, checks, paper_s = load_suite(spec, out, "paper")
    strong_records, strong_s = [], []
    if spec.strong is not None:
        strong_records, strong_checks, strong_s = load_suite(spec, out, "strong")
        checks += strong_checks
    pairs_path = out / "data" / "figure2-pairs.json"
    pairs = json.loads(pairs_path.read_text(encoding="utf-8")) if pairs_path.is_file() else None
    num_classes = next(iter(metas.values()))["num_classes"]
    study = Study(spec, paper_records, strong_records, checks, pairs, num_classes)
    claims = judge_claims(study)
    labels = method_labels(study)
    paper, strong = pooled_frame(paper_records, study), pooled_frame(strong_records, study)
    eps = spec.claims.eps
    strong_eps = eps if not strong.empty and (abs(strong.eps_255 - eps) < 1e-6).any() else (
        max(strong.eps_255) if not strong.empty else None)
    data = out / "data"
    t3_paper = table_at(paper, labels, eps, spec.bench.topk)
    t3_strong = table_at(strong, labels, strong_eps, spec.strong_topk) if strong_eps is not None else pd.DataFrame()
    seed_t = per_seed_table(paper_records, eps)
    calib = pd.read_csv(data / "calibration.csv") if (data / "calibration.csv").is_file() else None
    ece = ece_table(calib, study, labels) if calib is not None else pd.DataFrame()
    written = {
        "table3.csv": all_eps_csv(paper, labels), "table3-per-seed.csv": seed_t, "strong.csv": all_eps_csv(strong, labels),
        "claims.csv": pd.DataFrame([c.to_dict() for c in claims]), "checks.csv": pd.DataFrame(checks).drop(columns=["numbers"], errors="ignore"),
        "models.csv": models_table(study, metas),
    }
    for name, frame in written.items():
        files.write_text(data / name, hide_paths(frame.to_csv(index=False), spec, out))
    imgs = draw(out, spec, study, labels, paper, strong, metas)

    probes = json.loads((data / "probes.json").read_text()) if (data / "probes.json").is_file() else {}
    rebuilds = json.loads(rebuilds_path(out).read_text(encoding="utf-8")) if rebuilds_path(out).is_file() else []
    compute = {"train_seconds": {s: m.get("train_seconds") for s, m in metas.items()},
               "attack_seconds": {"paper": round(sum(s for s, _ in paper_s), 3), "strong": round(sum(s for s, _ in strong_s), 3)},
               "probe_seconds": probes.get("seconds", 0.0),
               "rebuild_seconds": sum(r.get("seconds") or 0 for r in rebuilds),
               "by_place": compute_places(metas, paper_s + strong_s + probe_places(out, metas), rebuilds)}
    total = (sum(v or 0 for v in compute["train_seconds"].values()) + sum(compute["attack_seconds"].values()) + compute["probe_seconds"]
             + compute["rebuild_seconds"])
    proc = f"{processor(device)}, {torch.get_num_threads()} torch threads"
    lanes = sorted({m["torch_threads"] for m in metas.values() if m.get("torch_threads")})  # `--jobs N` trains at fewer
    readings = read_controls(study)
    head = headline_blocks(spec, study, claims, readings)
    title = f"robustmix study: {spec.data_label}"

    blocks = [("h1", title), verdict_panel(head, claims, proto), *claims_blocks(spec, proto, claims_table(claims, proto)),
              *controls_blocks(readings, proto),
              ("h2", "What was run"),
              ("p", "Error rates in %, lower is better; eps on the 0–255 scale. Total compute "
                    f"{total / 60:.1f} min: " + "; ".join(f"{k} {v / 60:.1f} min" for k, v in compute["by_place"].items()) + "."),
              ("list", [f"data: {data_identity(spec, metas, num_classes)}", *suites_text(spec, proto),
                        f"command: `{portable_command(command, spec, out)}`" + "".join(
                            f" ({name}: {what})" for name, what in (("DATA", "the data set's folder on your machine"),
                                                                    ("OUT", "the report's folder"))
                            if f"${name}" in portable_command(command, spec, out)),
                        f"this report written with robustmix {__version__}, torch {torch.__version__}, Python {platform.python_version()}; "
                        f"the checkpoints were trained with {torch_versions(metas)}",
                        f"this report written on: {proc}; device: {device}",
                        f"compute: training {sum(v or 0 for v in compute['train_seconds'].values()):.0f} s (the wall seconds each checkpoint "
                        "recorded, summed over the models: they include any time a run was paused or shared the CPU, "
                        "as with `--jobs N`, whose processes train side by side"
                        + (f"; each model trained at {' or '.join(map(str, lanes))} torch thread(s)" if lanes else "") + "), attacks "
                        f"{sum(compute['attack_seconds'].values()):.0f} s, probes {compute['probe_seconds']:.0f} s"
                        + (f", rebuilding kept checkpoints' weights on later machines {compute['rebuild_seconds']:.0f} s "
                           f"({len(rebuilds)} rebuild(s), data/rebuilds.json)" if rebuilds else "")
                        + " (this run's stages: " + (", ".join(f"{k} {v:.1f} s" for k, v in walls.items()) or "the report only") + ")",
                        "checkpoints trained on: " + "; ".join(f"{p} ({n})" for p, n in trained_on(metas).items())]),
              ("table", models_table(study, metas)),
              ("h3", "Scope: what the recipes add to the paper's ERM"),
              ("p", f"Every verdict is about models trained as below, not about the paper's recipe ([docs/protocol.md]({proto}#cifar-recipe)). "
                    "What each arm's training includes that the paper's ERM did not:"),
              ("list", recipe_scope(spec)),
              *([("p", SMOOTHING_NOTE)] if any(c.label_smoothing for c in study.configs.values()) else []),
              ("h2", f"Table 3 at eps {eps:g}/255 (paper suite)"),
              ("p", "Pooled over each method's seeds, with the 95% seed-level interval (see Uncertainty; clipped to [0, 100]); hover over "
                    "a cell for its per-seed values. Per-seed numbers also below and in [data/table3-per-seed.csv](data/table3-per-seed.csv); "
                    "every eps in [data/table3.csv](data/table3.csv)."),
              ("table", seed_notes(t3_paper, paper_records, study, labels, eps)),
              ("fold", f"Per seed ({len(seed_t)} rows)", [("table", seed_t)])]
    if not t3_strong.empty:
        shown = square_honest(seed_notes(t3_strong, strong_records, study, labels, strong_eps), strong_records, study, labels, strong_eps)
        blocks += [("h2", f"Strong suite and worst case at eps {strong_eps:g}/255"),
                   ("p", "Worst case: an example counts as correct only if it is correct under every attack run (the number a robustness "
                         "claim should quote)."
                         + (" Square ran only on the examples no gradient attack fooled (the survivors): its column says how many of "
                            "them it fooled; its error rate, the clean error by construction, is in data/strong.csv."
                            if any("survivors" in c for c in t3_strong.columns) else "")
                         + " Every eps in [data/strong.csv](data/strong.csv)."), ("table", shown), imgs["strong-suite"]]
    blocks += [("h2", "Robustness curves" if several_eps(paper) else "Paper suite per attack"), imgs["robustness-paper"]] + (
        [imgs["robustness-strong"]] if "robustness-strong" in imgs else [])
    if "figure2" in imgs:
        blocks += [("h2", "Figure 2 (a) and (b)"), ("p", f"Mean over each method's seeds; pairs of training examples ([docs/protocol.md]({proto}#figure-2))."),
                   imgs["figure2"]]
    if "calibration" in imgs:
        blocks += [("h2", "Calibration"), ("table", ece), imgs["calibration"]]
    blocks += [("h2", "Training curves"), imgs["training-curves"],
               *checks_blocks(checks_summary(checks), checks_grid(checks, proto), checks_table(checks, proto), proto),
               ("h2", "Uncertainty"), *[("p", t) for t in uncertainty_text(study)]]

    markdown = to_markdown(blocks)
    notes = protocol_notes(PROTOCOL, proto, markdown)
    files.write_text(out / "README.md", hide_paths(markdown, spec, out))
    page = to_html(blocks, out, title, source=proto, notes=notes, notes_title=NOTES_TITLE)
    files.write_text(out / "report.html", hide_paths(page, spec, out))
    doc = {
        "format": "robustmix-study/1", "command": portable_command(command, spec, out), "robustmix_version": __version__, "torch_version": torch.__version__,
        "python_version": platform.python_version(), "processor": proc, "device": device, "spec": spec.canonical(),
        "timing": {"stages_this_run": walls, "compute": compute, "total_compute_seconds": total},
        "numbers": {
            "headline": headline_text(head), "models": models_table(study, metas).to_dict(orient="records"),
            "paper": paper.to_dict(orient="records"), "strong": strong.to_dict(orient="records"),
            "claims": [c.to_dict() for c in claims], "checks": checks,
            "ece": ece.to_dict(orient="records"), **({"controls": [r.to_dict() for r in readings]} if readings else {}),
        },
    }
    doc = json.loads(hide_paths(json.dumps(clean(doc)), spec, out))  # no machine path: the data's folder is $DATA
    files.write_json(out / "study.json", doc)
    return doc
