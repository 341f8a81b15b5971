import hashlib
import os
import platform

# The float kernels pinned to AVX2 on x86-64 before torch loads: ATen's own (BatchNorm, elementwise,
# reductions), oneDNN's convolutions and MKL's matmuls. Without it a Zen 4 EPYC (AVX-512) trains
# other digits models than the AVX2 EPYC the docs pages were made on, and every table they show
# differs (tests/test_docs.py); with it the Zen 4 prints exactly the pages' outputs. It is no
# guarantee for larger models: a CIFAR-10 run still differed from epoch 1 (oneDNN also picks its
# blocking by cache size). docs/tools/examples.py pins the same way; a variable the caller set wins.
if platform.machine().lower() in ("x86_64", "amd64"):
    for _name, _value in (("ATEN_CPU_CAPABILITY", "avx2"), ("ONEDNN_MAX_CPU_ISA", "AVX2"), ("MKL_CBWR", "AVX2")):
        os.environ.setdefault(_name, _value)

import pytest  # noqa: E402
import torch  # noqa: E402

from robustmix.config import TrainConfig
from robustmix.data import load_dataset
from robustmix.train import train

torch.set_num_threads(min(2, torch.get_num_threads()))

# The session's shared models, each with the state it was made in. Every test must leave them as it
# found them (eval mode, same weights, same layout): a test that leaves one in train mode changes
# the results of every test after it, which then fails only in the full suite's order.
_SHARED: dict[str, tuple[torch.nn.Module, tuple]] = {}


def model_state(model: torch.nn.Module) -> tuple:
    """(mode of every submodule, sha256 of every parameter and buffer, their strides)."""
    digest = hashlib.sha256()
    strides = []
    for name, t in model.state_dict(keep_vars=True).items():
        digest.update(name.encode() + t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        strides.append(t.stride())
    return tuple(m.training for m in model.modules()), digest.hexdigest(), tuple(strides)


def _shared(name: str, made):
    _SHARED[name] = (made[0], model_state(made[0]))
    return made


@pytest.fixture(autouse=True)
def session_models_unchanged(request):
    """Fails the test that changed a shared model (named by the failure), not a later one."""
    yield
    for name, (model, state) in _SHARED.items():
        now = model_state(model)
        if now != state:
            _SHARED[name] = (model, now)  # report it once, here
            what = [k for k, a, b in zip(("mode", "weights", "layout"), state, now) if a != b]
            pytest.fail(f"this test left the shared model {name!r} changed ({', '.join(what)}): "
                        "wrap it in eval mode and restore what you change")


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def trained(digits):
    """A small ERM CNN trained on digits for a few epochs: (model, meta)."""
    return _shared("trained", train(TrainConfig(epochs=4, seed=0), data=digits))


@pytest.fixture(scope="session")
def trained_mixup(digits):
    return _shared("trained_mixup", train(TrainConfig(method="mixup", alpha=1.0, epochs=4, seed=1), data=digits))


@pytest.fixture()
def batch(digits):
    return digits.x_test[:96].clone(), digits.y_test[:96].clone()
