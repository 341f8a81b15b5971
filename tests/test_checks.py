"""Input-domain and model-state checks: refused before any attack runs, never clamped silently;
warnings for randomized and probability-output models; models handed back as they came."""

import copy
import warnings

import pytest
import torch
from torch import nn

from robustmix.attacks import ATTACKS, fgsm_sweep
from robustmix.runtime.errors import RobustmixWarning
from robustmix.store.runs import check_fits
from robustmix.evaluation.guards import check_model, model_classes
from robustmix.runtime.errors import RobustmixError
from robustmix.store.checkpoint import Checkpoint
from robustmix.evaluation.evaluator import EvalConfig, evaluate


class Counting(nn.Module):
    """Wraps a model and counts forward passes (to show a check ran before any attack did)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0
        self.train(model.training)  # a wrapper in its model's mode (see conftest.session_models_unchanged)

    def forward(self, x):
        self.calls += 1
        return self.model(x)


class Randomized(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.train(model.training)  # a wrapper in its model's mode (see conftest.session_models_unchanged)

    def forward(self, x):
        return self.model(x) + 0.1 * torch.randn(x.shape[0], 10)


class NaNLogits(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.train(model.training)  # a wrapper in its model's mode (see conftest.session_models_unchanged)

    def forward(self, x):
        out = self.model(x).clone()
        out[0, 0] = float("nan")
        return out


def _nan(x):
    x = x.clone()
    x[0, 0, 0, 0] = float("nan")
    return x


def _inf(x):
    x = x.clone()
    x[1, 0, 2, 2] = float("inf")
    return x


BAD_X = {
    "0-255 floats": (lambda x: x * 255, "outside [0, 1]"),
    "just above 1": (lambda x: x.clamp(0, 1) * 1.0001 + 1e-4, "outside [0, 1]"),
    "negative (normalised)": (lambda x: (x - 0.5) / 0.25, "outside [0, 1]"),
    "NaN": (_nan, "NaN or inf"),
    "inf": (_inf, "NaN or inf"),
    "uint8": (lambda x: (x * 255).to(torch.uint8), "dtype torch.uint8"),
    "no batch dim": (lambda x: x[0], "N×C×H×W"),
    "empty": (lambda x: x[:0], "empty"),
}

BAD_Y = {
    "label = num_classes": (lambda y: torch.where(torch.arange(len(y)) == 3, 10, y), "label 10 is outside"),
    "negative label": (lambda y: torch.where(torch.arange(len(y)) == 0, -1, y), "label -1 is outside"),
    "float labels": (lambda y: y.float(), "integer tensor"),
    "one-hot labels": (lambda y: nn.functional.one_hot(y, 10), "1-D"),
    "too few labels": (lambda y: y[:-1], "labels"),
}


def run_attack(name, model, x, y):
    if name == "fgsm_sweep":
        return fgsm_sweep(model, x, y, eps=[4 / 255])
    return ATTACKS[name].fn(model, x, y, eps=4 / 255)


ENTRY_POINTS = sorted(ATTACKS) + ["fgsm_sweep"]


@pytest.mark.parametrize("bad", sorted(BAD_X))
@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_bad_pixels_refused_before_any_forward_pass(name, bad, trained, batch):
    model = Counting(trained[0])
    x, y = batch
    make, words = BAD_X[bad]
    with pytest.raises(RobustmixError, match=words.replace("[", r"\[").replace("]", r"\]")):
        run_attack(name, model, make(x), y)
    assert model.calls == 0, "the check must come before the attack"


@pytest.mark.parametrize("bad", sorted(BAD_Y))
@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_bad_labels_refused_before_any_forward_pass(name, bad, trained, batch):
    model = Counting(trained[0])
    x, y = batch
    make, words = BAD_Y[bad]
    with pytest.raises(RobustmixError, match=words):
        run_attack(name, model, x, make(y))
    assert model.calls == 0


def test_valid_edge_pixels_pass_unchanged(trained, batch):
    """Exactly 0 and exactly 1 are valid; nothing is clamped or rejected."""
    model, _ = trained
    x, y = batch
    x = x.clone()
    x[0] = 0.0
    x[1] = 1.0
    x_adv = ATTACKS["fgsm"].fn(model, x, y, eps=4 / 255)
    assert (x_adv - x).abs().max() <= 4 / 255 + 1e-6


def test_model_classes_reads_last_linear_layer(trained):
    assert model_classes(trained[0]) == 10
    assert model_classes(nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))) == 4
    assert model_classes(nn.Identity()) is None


def test_nan_logits_refused(trained, batch):
    with pytest.raises(RobustmixError, match="NaN or inf logits"):
        check_model(NaNLogits(trained[0]), batch[0])


def test_deterministic_model_passes_quietly(trained, batch):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RobustmixWarning)
        logits = check_model(trained[0], batch[0])
    assert logits.shape == (64, 10)


def test_randomized_model_warns(trained, batch):
    torch.manual_seed(0)
    with pytest.warns(RobustmixWarning, match="randomized"):
        check_model(Randomized(trained[0]), batch[0])


def test_probability_outputs_warn(trained, batch):
    with pytest.warns(RobustmixWarning, match="probabilities"):
        check_model(nn.Sequential(trained[0], nn.Softmax(dim=1)).eval(), batch[0])


def test_check_fits_compares_classes_and_shape():
    meta = {"num_classes": 10, "input_shape": [1, 8, 8]}
    check_fits(meta, 10, (1, 8, 8), name="ck", dataset="digits")
    with pytest.raises(RobustmixError, match="has 10 classes but data set 'cifar100' has 100"):
        check_fits(meta, 100, (3, 32, 32), name="ck", dataset="cifar100")
    with pytest.raises(RobustmixError, match=r"inputs of shape \[1, 8, 8\]"):
        check_fits(meta, 10, (3, 32, 32), name="ck", dataset="svhn")


# --- evaluate: checks once per evaluation, model handed back as it came ------------------------

CFG = EvalConfig(eps=(16 / 255,), iters=2, batch_size=32)


def test_evaluate_refuses_nan_logits_and_bad_labels_before_attacking(trained, batch):
    x, y = batch
    with pytest.raises(RobustmixError, match="NaN or inf logits"):
        evaluate([Checkpoint("t", NaNLogits(trained[0]))], x, y, CFG, surrogate=Checkpoint("s", trained[0]))
    with pytest.raises(RobustmixError, match="label 10 is outside"):
        evaluate([Checkpoint("t", trained[0])], x, torch.full_like(y, 10), CFG, surrogate=Checkpoint("s", trained[0]))
    with pytest.raises(RobustmixError, match="outside"):
        evaluate([Checkpoint("t", trained[0])], x * 2, y, CFG, surrogate=Checkpoint("s", trained[0]))
    with pytest.raises(RobustmixError, match="empty"):
        evaluate([Checkpoint("t", trained[0])], x[:0], y[:0], CFG, surrogate=Checkpoint("s", trained[0]))


def test_evaluate_refuses_duplicate_target_names_and_wrong_shapes(trained, batch):
    x, y = batch
    t = Checkpoint("t", trained[0], {"input_shape": [1, 8, 8]})
    with pytest.raises(RobustmixError, match="two targets are named 't'"):
        evaluate([t, t], x, y, CFG, surrogate=t)
    wrong = Checkpoint("w", trained[0], {"input_shape": [3, 32, 32]})
    with pytest.raises(RobustmixError, match=r"w takes inputs of shape \[3, 32, 32\]"):
        evaluate([wrong], x, y, CFG, surrogate=t)


def test_evaluate_warns_once_for_a_randomized_target(trained, batch):
    torch.manual_seed(0)
    x, y = batch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate([Checkpoint("r", Randomized(trained[0]))], x, y, CFG, surrogate=Checkpoint("s", trained[0]))
    randomized = [w for w in caught if issubclass(w.category, RobustmixWarning) and "randomized" in str(w.message)]
    assert len(randomized) == 1, "checked once per evaluation, not per batch or attack"


def test_evaluate_hands_models_back_in_train_mode_with_stats_and_grads_unchanged(trained, trained_mixup, batch):
    x, y = batch
    target, surrogate = trained_mixup[0], trained[0]
    models = (target, surrogate)
    for m in models:
        m.train()
        for i, p in enumerate(m.parameters()):
            p.grad = torch.full_like(p, float(i))  # a stale gradient the caller may still need
    states = [copy.deepcopy(m.state_dict()) for m in models]
    grads = [[p.grad.clone() for p in m.parameters()] for m in models]
    try:
        records = evaluate([Checkpoint("t", target)], x, y, CFG, surrogate=Checkpoint("s", surrogate))
        assert {r["setting"] for r in records} == {"clean", "white-box", "black-box"}
        for m, state, grad in zip(models, states, grads):
            assert m.training, "evaluate must hand a model back in the mode it came in"
            for k, v in m.state_dict().items():
                assert torch.equal(v, state[k]), f"{k} changed (BatchNorm running statistics must not move)"
            for p, g in zip(m.parameters(), grad):
                assert torch.equal(p.grad, g), "parameter gradients must be untouched"
    finally:
        for m in models:
            m.eval()
            for p in m.parameters():
                p.grad = None
