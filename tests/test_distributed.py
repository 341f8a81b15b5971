"""`torchrun --nproc-per-node 2` on CPU (gloo): training and evaluation equal one process."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
pytestmark = pytest.mark.skipif(not Path(TORCHRUN).exists(), reason="torchrun not installed")


def robustmix(cwd, *args, nproc=1):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    if nproc == 1:
        cmd = [sys.executable, "-m", "robustmix", *args]
    else:
        cmd = [TORCHRUN, "--standalone", f"--nproc-per-node={nproc}", "-m", "robustmix", *args]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    # a rank that left with its process group alive used to abort now and then at exit (gloo)
    assert "terminate called" not in p.stderr, p.stderr[-2000:]
    return p


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    # 300 images, batch 64: 5 steps, the last one uneven (44 = 22 + 22; 64 = 32 + 32)
    common = ["train", "--epochs", "1", "--train-subset", "300", "--batch-size", "64"]
    robustmix(d, *common, "--out", "single")
    robustmix(d, *common, "--out", "ddp", nproc=2)
    robustmix(d, *common, "--seed", "3", "--role", "surrogate", "--out", "sur")
    return d


def test_two_rank_training_matches_one_process(runs):
    a = load_file(runs / "single" / "model.safetensors")
    b = load_file(runs / "ddp" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5, rtol=0), k
    meta = json.loads((runs / "ddp" / "meta.json").read_text())
    assert meta["world_size"] == 2


def test_two_rank_evaluation_gathers_exactly_the_single_process_records(runs):
    args = ["attack", "--targets", "single", "--surrogate", "sur", "--eps", "8,16", "--iters", "3"]
    robustmix(runs, *args, "--out", "one.json")
    robustmix(runs, *args, "--out", "two.json", nproc=2)
    one = json.loads((runs / "one.json").read_text())["records"]
    two = json.loads((runs / "two.json").read_text())["records"]
    assert len(one) == 9 and one == two  # per-example bit-strings included, in the original order
