"""Result files: records (one per target × setting × attack × eps) as JSON, plus a CSV view.

The JSON carries the configuration that produced the records and the per-example correctness
bit-strings, so every figure can be recomputed from it; the CSV drops those strings.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from . import files
from .version import __version__
from .errors import RobustmixError

FORMAT = "robustmix-results/1"
PER_EXAMPLE = ("top1_correct", "top5_correct")


def save_results(path: str | Path, records: list[dict], *, config: dict, checkpoints: dict, probes: list[dict] | None = None,
                 checks: list[dict] | None = None) -> Path:
    """Write `path` (.json) and the CSV beside it, atomically. Returns the JSON path.

    `probes`: the soundness checks' probe records (`robustmix.soundness_probes`); `checks`: the checks computed
    from records + probes (`soundness.Check.to_dict`), kept for readers without robustmix."""
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
    return doc


def records_frame(records: list[dict]) -> pd.DataFrame:
    """Records as a DataFrame, without the per-example bit-strings."""
    df = pd.DataFrame.from_records(records)
    return df.drop(columns=[c for c in PER_EXAMPLE if c in df.columns])


def csv_text(df: pd.DataFrame) -> str:
    """A DataFrame as CSV text, without its index."""
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue()
