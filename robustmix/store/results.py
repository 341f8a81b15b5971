"""Result files: records (one per target × setting × attack × eps) as JSON, plus a CSV view.

The JSON carries the configuration that produced the records and the per-example correctness
bit-strings, so every figure can be recomputed from it; the CSV drops those strings. Files of the
same evaluation on different targets merge into one (`merge_results`), so a checkpoint trained
later joins a comparison without attacking the others again.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Sequence

import pandas as pd

import numpy as np

from ..models.predict import percent_wrong
from ..runtime import files
from ..runtime.errors import RobustmixError
from ..runtime.version import __version__

FORMAT = "robustmix-results/1"
PER_EXAMPLE = ("top1_correct", "top5_correct")


def save_results(path: str | Path, records: list[dict], *, config: dict, checkpoints: dict, probes: list[dict] | None = None,
                 checks: list[dict] | None = None) -> Path:
    """Write `path` (.json) and the CSV beside it, atomically. Returns the JSON path.

    `probes`: the soundness checks' probe records (`robustmix.evaluation.probes`); `checks`: the checks computed
    from records + probes (`robustmix.soundness.Check.to_dict`), kept for readers without robustmix."""
    path = Path(path)
    doc = {
        "format": FORMAT,
        "robustmix_version": __version__,
        "config": config,
        "checkpoints": checkpoints,
        "records": records,
        "probes": probes or [],
        "checks": checks or [],
    }
    files.write_json(path, doc)
    files.write_text(path.with_suffix(".csv"), records_frame(records).to_csv(index=False))
    return path


def load_results(path: str | Path) -> dict:
    """A results file written by `robustmix attack` or `save_results`: {format, config, checkpoints,
    records, ...}. Raises RobustmixError when it is missing or not a robustmix results file.
    """
    path = Path(path)
    if not path.is_file():
        raise RobustmixError(f"results file {str(path)!r} does not exist: run 'robustmix attack' first")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RobustmixError(f"{path}: not a readable results file ({e.__class__.__name__}): rerun 'robustmix attack'") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("records"), list):
        raise RobustmixError(f"{path}: not a robustmix results file: give the .json written by 'robustmix attack'")
    # files written before the counting rule: read under it (idempotent for the files written after)
    doc["probes"] = count_clean_errors(doc.get("probes") or [], clean=doc["records"])
    doc["records"] = count_clean_errors(doc["records"])
    return doc


def _correct(bits: str) -> np.ndarray:
    return np.frombuffer(bits.encode("ascii"), dtype=np.uint8) == ord("1")


def _bits(correct: np.ndarray) -> str:
    return (correct.astype(np.uint8) + ord("0")).tobytes().decode("ascii")


def count_clean_errors(records: list[dict], *, clean: list[dict] | None = None) -> list[dict]:
    """The counting rule (docs/protocol.md#how-to-read; AutoAttack's convention): an example counts as
    correct under an attack only if the model gets it right without attack *and* under the attack, so an
    example the model already gets wrong is an error under every attack, even where the perturbation
    happens to push it to the right class (FGSM does, on a few dozen of 10,000 CIFAR-10 examples).

    Every attacked record (any setting but clean, probes included) that has per-example bits is ANDed,
    per metric, with the clean record of its target on the same examples (found in `clean`, default
    `records`), and its error rates are recomputed from the counts. Records without such a clean record
    are returned as they are; a record already counted so is unchanged (idempotent), so results files
    written before the rule read the same as files written after it.
    """
    base = {r["target"]: r for r in (records if clean is None else clean)
            if r.get("setting") == "clean" and not r.get("probe") and isinstance(r.get("top1_correct"), str)}
    out = []
    for r in records:
        c = base.get(r.get("target"))
        if r.get("setting") == "clean" or c is None or not all(isinstance(r.get(k), str) and len(r[k]) == len(c[k]) for k in PER_EXAMPLE):
            out.append(r)
            continue
        r = dict(r)
        for metric in ("top1", "top5"):
            correct = _correct(r[f"{metric}_correct"]) & _correct(c[f"{metric}_correct"])
            r[f"{metric}_correct"] = _bits(correct)
            r[f"{metric}_err"] = percent_wrong(int(correct.size - np.count_nonzero(correct)), correct.size)
        out.append(r)
    return out


def merge_results(docs: Sequence[dict], names: Sequence[str]) -> dict:
    """One results document from several that ran the same evaluation on different targets.

    Sound because a target's records depend on its own model, the examples and the config alone:
    FGSM and I-FGSM are deterministic, and the strong attacks' random numbers follow (seed, example
    index), not the other targets (`attacks/noise.py`); tests/test_results_merge.py checks that the
    merge of separate runs equals one joint run. Refuses (RobustmixError) files whose configs differ
    (eps, attacks, data, examples, device, ...), that share a target, or that record one checkpoint
    name (a surrogate) with different provenance. `names` label the files in errors and in the
    merged config's "merged_from".
    """
    if len(docs) != len(names) or not docs:
        raise ValueError("merge_results needs one name per document, and at least one document")
    if len(docs) == 1:
        return docs[0]
    def setup(doc: dict) -> dict:  # the evaluation's config, without the record of earlier merges
        return {k: v for k, v in doc.get("config", {}).items() if k != "merged_from"}

    def sources(doc: dict, name: str) -> list[dict]:
        return doc.get("config", {}).get("merged_from") or [{"file": name, "robustmix_version": doc.get("robustmix_version")}]

    first, first_name = setup(docs[0]), names[0]
    owner: dict[str, str] = {}  # target -> the file that has it
    checkpoints: dict[str, dict] = {}
    for doc, name in zip(docs, names):
        config = setup(doc)
        differ = sorted(k for k in set(first) | set(config) if first.get(k) != config.get(k))
        if differ:
            raise RobustmixError(f"{name} was attacked with another evaluation than {first_name} (they differ in "
                                 f"{', '.join(differ)}): rerun 'robustmix attack' with the same flags, or report them separately")
        for target in sorted({r["target"] for r in doc["records"]}):
            if target in owner:
                raise RobustmixError(f"target {target!r} is in both {owner[target]} and {name}: give each target's results once")
            owner[target] = name
        for ckpt, prov in doc.get("checkpoints", {}).items():
            if checkpoints.setdefault(ckpt, prov) != prov:
                raise RobustmixError(f"checkpoint {ckpt!r} differs between {name} and an earlier file (same name, another "
                                     "model: a different surrogate?): attack with the same checkpoints, or report them separately")
    return {
        "format": FORMAT,
        "robustmix_version": __version__,
        "config": {**first, "merged_from": [s for d, n in zip(docs, names) for s in sources(d, n)]},
        "checkpoints": checkpoints,
        "records": [r for d in docs for r in d["records"]],
        "probes": [p for d in docs for p in d.get("probes", [])],
        "checks": [c for d in docs for c in d.get("checks", [])],
    }


def records_frame(records: list[dict]) -> pd.DataFrame:
    """Records as a DataFrame, without the per-example bit-strings."""
    df = pd.DataFrame.from_records(records)
    return df.drop(columns=[c for c in PER_EXAMPLE if c in df.columns])


def csv_text(df: pd.DataFrame) -> str:
    """A DataFrame as CSV text, without its index."""
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue()
