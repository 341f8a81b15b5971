"""The study's probes: Figure 2 (a) and (b) per pair of training examples, and calibration on the paper
suite's examples, one file per model in DIR/data/probes/<slot>.json (reused while the setup and the
weights recorded in the model's meta.json match, so it needs no weights once written), then gathered
into DIR/data/figure2.csv, figure2-pairs.json, calibration.csv and probes.json for the report.
Library code: nothing is printed here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import load_dataset
from ..evaluation.probes import calibration_frame, interpolation_metrics, sample_pairs
from ..runtime import files
from ..runtime.devices import host_and_job, processor
from .attacking import open_model, recorded, suite_examples
from .headline import scrub
from .spec import StudySpec
from .training import Model, models_of, normalised, same_data

FORMAT = "robustmix-study-probe/1"


def probe_setup(spec: StudySpec) -> dict:
    return normalised({"figures": spec.figures.__dict__, "lam": spec.claims.lam, "dataset": spec.bench.dataset,
                       "examples": spec.bench.examples})


def probe_path(out: Path, slot: str) -> Path:
    return Path(out) / "data" / "probes" / f"{slot}.json"


def read_probe(out: Path, slot: str) -> dict | None:
    try:
        doc = json.loads(probe_path(out, slot).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == FORMAT else None


def probes_reusable(spec: StudySpec, out: Path, m: Model) -> bool:
    doc = read_probe(out, m.slot)
    sha = recorded(m).get("weights_sha256")
    if doc is None or sha is None or doc.get("weights_sha256") != sha:
        return False
    saved, now = dict(doc.get("setup") or {}), probe_setup(spec)
    return same_data(saved.pop("dataset", None), now.pop("dataset")) and saved == now


def lam_grid(spec: StudySpec) -> np.ndarray:
    return np.unique(np.round(np.append(np.linspace(0, 1, spec.figures.lams), spec.claims.lam), 6))


def probe_model(spec: StudySpec, m: Model, device: torch.device, data, pairs: tuple[np.ndarray, np.ndarray]) -> dict:
    """One model's Figure 2 curves, its per-pair misses and gradient norms at λ = [claims] lam, and its
    calibration bins: JSON-ready (floats as Python floats, so they read back bit for bit)."""
    c = open_model(m, device)
    f, lams, (i, j) = spec.figures, lam_grid(spec), pairs
    at = int(np.argmin(np.abs(lams - spec.claims.lam)))
    start = time.perf_counter()
    met = interpolation_metrics(c.model, data.x_train[i], data.x_train[j], data.y_train[i], data.y_train[j], lams, per_pair=True)
    x, y = suite_examples(data, spec.bench.examples, 0)
    calib = calibration_frame({m.slot: c.model}, x, y, n_bins=f.bins)
    return {
        "format": FORMAT, "checkpoint": m.slot, "setup": probe_setup(spec), "weights_sha256": c.meta.get("weights_sha256"),
        "device": str(device), "processor": processor(device), "seconds": round(time.perf_counter() - start, 3), **host_and_job(),
        "figure2": {"lam": lams.tolist(), "miss_rate": np.asarray(met["miss_rate"], dtype=float).tolist(),
                    "grad_norm": np.asarray(met["grad_norm"], dtype=float).tolist()},
        "pairs": {"lam": float(lams[at]), "miss": "".join("1" if b else "0" for b in met["miss"][:, at]),
                  "grad": [round(float(g), 8) for g in met["grad"][:, at]]},
        "calibration": calib.to_dict(orient="list"),
    }


def gather(spec: StudySpec, out: Path, models: list[Model]) -> None:
    """The report's probe files from the per-model ones (in the spec's model order)."""
    f, docs = spec.figures, [read_probe(out, m.slot) for m in models]
    curves = [pd.DataFrame({"checkpoint": d["checkpoint"], **d["figure2"], "n_pairs": f.pairs, "seed": f.seed,
                            "distinct_labels": f.distinct_labels})[["checkpoint", "lam", "miss_rate", "grad_norm", "n_pairs", "seed",
                                                                   "distinct_labels"]] for d in docs]
    data = Path(out) / "data"
    files.write_text(data / "figure2.csv", pd.concat(curves, ignore_index=True).to_csv(index=False))
    files.write_text(data / "calibration.csv", pd.concat([pd.DataFrame(d["calibration"]) for d in docs], ignore_index=True).to_csv(index=False))
    files.write_json(data / "figure2-pairs.json", {"lam": docs[0]["pairs"]["lam"],
                                                  "pairs": {d["checkpoint"]: {k: d["pairs"][k] for k in ("miss", "grad")} for d in docs}})
    # a report file: the data named as the report names it ($DATA), never this machine's folder
    setup = json.loads(scrub(json.dumps(probe_setup(spec)), spec))
    files.write_json(data / "probes.json", {"format": "robustmix-study-probes/2", "setup": setup,
                                            "checkpoints": {d["checkpoint"]: d["weights_sha256"] for d in docs},
                                            "seconds": round(sum(d["seconds"] for d in docs), 3),
                                            "devices": sorted({d["device"] for d in docs})})


def probes_stage(spec: StudySpec, out: Path, device: torch.device, *, only: set[str] | None = None) -> float | None:
    """Figure 2 and calibration of every model (of the slots in `only`, default all) into
    DIR/data/probes/; the report's files are gathered once every model has its file. Returns None
    when nothing was computed, else this run's seconds."""
    models = models_of(spec, out)
    todo = [m for m in models if (only is None or m.slot in only) and not probes_reusable(spec, out, m)]
    start = time.perf_counter()
    if todo:
        data = load_dataset(spec.bench.dataset)
        f = spec.figures
        pairs = sample_pairs(data.y_train, f.pairs, seed=f.seed, distinct_labels=f.distinct_labels)
        for m in todo:
            files.write_json(probe_path(out, m.slot), probe_model(spec, m, device, data, pairs))
    if all(probes_reusable(spec, out, m) for m in models):
        gather(spec, out, models)
    return time.perf_counter() - start if todo else None
