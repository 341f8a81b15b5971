"""notebooks/compare_checkpoints.ipynb runs headless (nbclient) on digits with tiny settings."""

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("ipykernel.kernelspec")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "compare_checkpoints.ipynb"


def test_notebook_runs_headless_and_draws_its_figures(tmp_path, monkeypatch):
    # A `python3` kernel spec that runs *this* interpreter, found first on JUPYTER_PATH, so the
    # kernel imports the same robustmix and torch as the tests.
    prefix = tmp_path / "jupyter"
    kernelspec.install(kernel_name="python3", prefix=str(prefix))
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("ROBUSTMIX_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("ROBUSTMIX_EPOCHS", "1")
    monkeypatch.setenv("ROBUSTMIX_EPS", "8")
    monkeypatch.setenv("ROBUSTMIX_PAIRS", "50")
    monkeypatch.setenv("ROBUSTMIX_ITERS", "3")
    monkeypatch.setenv("ROBUSTMIX_SUITE", "strong")
    monkeypatch.setenv("ROBUSTMIX_BUDGET", "3,1,5,20")  # PGD steps, restarts, APGD iterations, Square queries
    monkeypatch.setenv("ROBUSTMIX_FIGURES", str(tmp_path / "figures"))
    spec = (prefix / "share" / "jupyter" / "kernels" / "python3" / "kernel.json").read_text()
    assert sys.executable in spec or Path(sys.executable).name in spec

    nb = nbformat.read(NOTEBOOK, as_version=4)
    # as shipped: a quick look (about a minute on 2 idle cores), and the first cell says how to run the full budget
    first = nb.cells[0].source
    assert "about a minute" in first and "ROBUSTMIX_BUDGET=40,5,100,5000 ROBUSTMIX_EPS=2,4,8,16,32 ROBUSTMIX_PAIRS=1000 ROBUSTMIX_EXAMPLES=all ROBUSTMIX_TARGET_CLASSES=9" in first
    assert 'ROBUSTMIX_BUDGET", "10,1,20,200"' in nb.cells[1].source and 'ROBUSTMIX_EPS", "8,16,32"' in nb.cells[1].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()

    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", "")) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Paired tests" in text and "mixup right, ERM wrong:" in text
    shown = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("name") == "stderr")
    assert "attacks and checks: 100%" in shown and "training digits-cnn-erm-s0-surrogate: 100%" in shown  # progress, as it runs
    assert "Warning" not in shown, shown
    assert "Worst case" in text and "Soundness checks" in text and "docs/protocol.md#check-gradients" in text
    for name in ("robustness-top1.png", "figure2.png", "calibration.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 10_000
    assert len(list((tmp_path / "runs").glob("*/model.safetensors"))) == 3
