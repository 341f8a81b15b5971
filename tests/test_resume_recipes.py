"""Resume (SIGKILL mid-run, then --resume: bit-identical weights), overwrite refusal, recipes, schedules."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robustmix.cli import main
from robustmix.training.config import TrainConfig
from robustmix.runtime.errors import RobustmixError
from robustmix.training.recipes import RECIPES, resolve_config
from robustmix.training.build import lr_factor
from robustmix.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["train", "--epochs", "5", "--method", "mixup", "--model", "cnn", "--width", "4", "--dropout", "0.2",
        "--train-subset", "400", "--label-noise", "0.2", "--seed", "3", "--device", "cpu"]


def cli(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "robustmix", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_sigkilled_run_resumes_to_bit_identical_weights(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli(ARGS + ["--out", str(full)]).wait(timeout=300) == 0
    p = cli(ARGS + ["--out", str(part)])
    state = part / "resume.safetensors"
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        log = part / "log.csv"
        if state.exists() and log.exists() and len(log.read_text().splitlines()) >= 3:  # 2 epochs done
            break
        time.sleep(0.01)
    assert p.poll() is None, "the run finished before it could be killed: make it longer"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (part / "meta.json").exists()
    again = cli(ARGS + ["--out", str(part)])  # without --resume: refused, nothing touched
    assert again.wait(timeout=60) == 2 and "--resume" in again.stderr.read()
    assert cli(ARGS + ["--out", str(part), "--resume"]).wait(timeout=300) == 0
    a, b = load_file(full / "model.safetensors"), load_file(part / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not state.exists(), "the resume state is removed once the checkpoint is written"
    import json

    ma, mb = (json.loads((d / "meta.json").read_text()) for d in (full, part))
    assert mb["resumed_at_epoch"] >= 2 and ma["resumed_at_epoch"] == 0
    assert [r["train_loss"] for r in ma["history"]] == [r["train_loss"] for r in mb["history"]]
    assert len((part / "log.csv").read_text().splitlines()) == 6


def test_resume_with_other_settings_is_refused(digits, tmp_path):
    cfg = TrainConfig(epochs=1, seed=0, train_subset=200)
    train(cfg, data=digits, state_path=tmp_path / "s.safetensors")
    with pytest.raises(RobustmixError, match="seed"):
        train(cfg.with_(seed=1), data=digits, state_path=tmp_path / "s.safetensors", resume=True)


def test_finished_checkpoint_is_never_overwritten_silently(tmp_path, capsys):
    out = tmp_path / "ck"
    base = ["train", "--epochs", "1", "--train-subset", "100", "--out", str(out)]
    assert main(base) == 0
    before = (out / "model.safetensors").read_bytes()
    for extra in ([], ["--resume"]):
        assert main(base + extra) == 2
        assert "--overwrite" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before
    assert main(base + ["--overwrite", "--seed", "1"]) == 0
    assert (out / "model.safetensors").read_bytes() != before
    assert (out / "log.csv").read_text().startswith("epoch,train_loss,train_acc,test_err")


def test_recipe_values_and_explicit_overrides():
    cfg = resolve_config("paper-cifar", epochs=None, lr=None, seed=4)
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size, cfg.epochs, cfg.milestones, cfg.alpha) == (
        0.1, 0.9, 1e-4, 128, 200, (100, 150), 1.0)
    assert cfg.recipe == "paper-cifar" and cfg.seed == 4 and not cfg.nesterov
    assert resolve_config("cpu-fast", epochs=1, dataset="digits").epochs == 1
    assert resolve_config(None) == TrainConfig()
    with pytest.raises(RobustmixError, match="recipe"):
        resolve_config("imagenet-in-1-hour")
    assert set(RECIPES) == {"paper-cifar", "cpu-fast", "fast-cifar", "fast-cifar-3x", "small-cnn", "fast-cifar-adv"}


def test_schedules():
    paper = resolve_config("paper-cifar")
    f = [lr_factor(e * 10, config=paper, steps_per_epoch=10) for e in (0, 99, 100, 149, 150, 199)]
    assert f == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    fast = resolve_config("cpu-fast")
    g = [lr_factor(s, config=fast, steps_per_epoch=50) for s in range(100)]
    assert max(g) == pytest.approx(1.0) and g.index(max(g)) == 24 and g[0] < 0.1 and g[-1] < 0.05
    cos = TrainConfig(epochs=2)
    assert lr_factor(0, config=cos, steps_per_epoch=5) == 1.0 and lr_factor(10, config=cos, steps_per_epoch=5) == pytest.approx(0)


def test_new_train_flags_reach_the_metadata(digits):
    cfg = TrainConfig(model="preact_resnet18", width=4, dropout=0.3, method="manifold-mixup", epochs=1,
                      train_subset=100, test_subset=50, label_noise=0.3, seed=2, schedule="onecycle")
    model, meta = train(cfg, data=digits)
    assert meta["model_options"] == {"width": 4, "dropout": 0.3}
    assert meta["data"]["label_noise_corrupted"] == 30 and meta["data"]["test_examples"] == 50
    assert meta["config"]["label_noise"] == 0.3 and meta["history"][0]["test_err"] >= 0
    from robustmix import load_checkpoint, save_checkpoint
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(d, model, meta)
        loaded, _ = load_checkpoint(d)
    x = digits.x_test[:4]
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
