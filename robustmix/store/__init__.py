"""What robustmix keeps on disk: checkpoint folders (weights as safetensors + meta.json), the
checkpoints of a runs folder, and result files (records as JSON, with a CSV view). Never unpickles
a file robustmix did not write.

    checkpoint.py  Checkpoint, save_checkpoint, load_checkpoint, read_meta, provenance
    legacy.py      plain state dicts from legacy .pt/.pth files, without unpickling code
    runs.py        a runs folder's checkpoints by role, their names, and the checks that let several
                   be evaluated together (same data, distinct names, fit the data set)
    results.py     save_results / load_results / merge_results: records, config, checkpoints, probes

May import: runtime, data, models.
"""

from .checkpoint import (
           Checkpoint,
           load_checkpoint,
           provenance,
           read_meta,
           save_checkpoint,
)
from .results import load_results, merge_results, records_frame, save_results

__all__ = ["Checkpoint", "load_checkpoint", "load_results", "merge_results", "provenance", "read_meta", "records_frame",
           "save_checkpoint", "save_results"]
