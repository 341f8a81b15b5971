import hashlib
import importlib.util
import sys
from pathlib import Path

# The float kernels pinned to AVX2 on x86-64 before torch loads: ATen's own (BatchNorm, elementwise,
# reductions), oneDNN's convolutions and MKL's matmuls. Without it a Zen 4 EPYC (AVX-512) trains
# other digits models than the AVX2 EPYC the docs pages were made on, and every table they show
# differs (tests/test_docs.py); with it the Zen 4 prints exactly the pages' outputs. It is no
# guarantee for larger models: a CIFAR-10 run still differed from epoch 1 (oneDNN also picks its
# blocking by cache size). The pin is docs/tools/examples.py's `pin_kernels` (one list of variables
# for both; that module imports only the standard library at load, so torch is not loaded yet); a
# variable the caller set wins.
_spec = importlib.util.spec_from_file_location("_docs_examples_pin", Path(__file__).resolve().parents[1] / "docs" / "tools" / "examples.py")
_examples = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # its dataclasses look their module up
_spec.loader.exec_module(_examples)
_examples.pin_kernels()

import pytest  # noqa: E402
import torch  # noqa: E402

from robustmix.training.config import TrainConfig
from robustmix.data import load_dataset
from robustmix.training.loop import train

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


@pytest.fixture(scope="session")
def digits_study(tmp_path_factory):
    """The committed tiny digits study run once (tests/study_runs.py): its folder. Tests that change
    it (delete a result, interrupt a stage) rerun the study, which restores it; others work on a copy."""
    import contextlib
    import io

    from study_runs import DIGITS, run_study

    out = tmp_path_factory.mktemp("study") / "digits"
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        assert run_study(DIGITS, "--out", out) == 0, said.getvalue()
    (out.parent / "first-run.log").write_text(said.getvalue())  # what the first run said, in order (test_study_evidence)
    return out
