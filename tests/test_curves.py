"""Training curves (robustmix.analysis.curves, `robustmix figures --curves`)."""

import pandas as pd
import pytest

from robustmix.store.checkpoint import save_checkpoint
from robustmix.cli import main
from robustmix.training.config import TrainConfig
from robustmix.analysis.curves import curves_figure, curves_frame, read_history
from robustmix.runtime.errors import RobustmixError
from robustmix.training.loop import train


@pytest.fixture(scope="module")
def folders(tmp_path_factory, trained, trained_mixup, digits):
    """Three checkpoint folders: ERM and mixup (4 epochs) and a shorter mixup run (2 epochs)."""
    root = tmp_path_factory.mktemp("curves")
    short = train(TrainConfig(method="mixup", epochs=2, train_subset=200, seed=2), data=digits)
    for name, (model, meta) in {"erm": trained, "mixup": trained_mixup, "mixup-short": short}.items():
        save_checkpoint(root / name, model, meta)
    return root


def test_frame_has_one_row_per_checkpoint_and_epoch(folders):
    frame = curves_frame({p.name: read_history(p) for p in sorted(folders.iterdir())})
    assert len(frame) == 4 + 4 + 2
    assert frame.groupby("checkpoint").epochs.first().to_dict() == {"erm": 4, "mixup": 4, "mixup-short": 2}
    assert set(frame[frame.checkpoint == "erm"].method) == {"erm"}
    erm = frame[frame.checkpoint == "erm"]
    assert erm.epoch.tolist() == [1, 2, 3, 4] and erm.train_acc.between(0, 100).all()


def test_figure_draws_two_lines_per_checkpoint_with_lengths_in_the_legend(folders):
    frame = curves_frame({p.name: read_history(p) for p in sorted(folders.iterdir())})
    fig = curves_figure(frame)
    acc, err = fig.axes[:2]
    assert len(acc.lines) == len(err.lines) == 3
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["erm (4 epochs)", "mixup (4 epochs)", "mixup-short (2 epochs)"]
    short = [line for line in err.lines if line.get_label().startswith("mixup-short")][0]
    assert list(short.get_xdata()) == [1, 2], "drawn against its own epochs"
    assert acc.lines[1].get_color() == acc.lines[2].get_color() != acc.lines[0].get_color(), "one colour per method"


def test_cli_writes_png_and_csv_without_data(folders, tmp_path):
    assert main(["figures", "--curves", "--runs", str(folders), "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 1000
    csv = pd.read_csv(tmp_path / "curves.csv")
    assert len(csv) == 10 and list(csv.columns[:6]) == ["checkpoint", "method", "alpha", "seed", "epochs", "epoch"]
    assert not (tmp_path / "figure2.png").exists(), "--curves draws only the curves"


def test_a_checkpoint_without_a_log_is_refused(folders, tmp_path):
    import json
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(folders / "erm", bare)
    meta = json.loads((bare / "meta.json").read_text())
    meta.pop("history")
    (bare / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RobustmixError, match="no training log"):
        read_history(bare)
    (bare / "log.csv").write_text("epoch,train_loss,train_acc,test_err\n1,2.0,50.0,40.0\n")
    assert read_history(bare)[1] == [{"epoch": 1, "train_loss": 2.0, "train_acc": 50.0, "test_err": 40.0}]
