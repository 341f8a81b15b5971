"""Intervals and paired tests (robustmix.analysis.comparisons); Figure 2 quantities and calibration (robustmix.evaluation.probes)."""

import numpy as np
import pytest
import torch

from robustmix.analysis.comparisons import error_intervals, holm, paired_comparisons, per_example_frame
from robustmix.evaluation.probes import calibration, figure2_curves, interpolation_metrics, sample_pairs
from robustmix.attacks import input_gradient
from robustmix.runtime.errors import RobustmixError
from robustmix.models.predict import predict_logits


def bits(mask) -> str:
    return "".join("1" if b else "0" for b in np.asarray(mask, dtype=bool))


def record(target, method, correct, *, setting="white-box", attack="fgsm", eps_255=4.0, alpha=None, top5=None):
    correct = np.asarray(correct, dtype=bool)
    top5 = correct if top5 is None else np.asarray(top5, dtype=bool)
    return {
        "target": target,
        "method": method,
        "alpha": alpha,
        "seed": 0,
        "setting": setting,
        "attack": attack,
        "iters": 10 if attack == "ifgsm" else (0 if attack == "none" else 1),
        "eps": eps_255 / 255,
        "eps_255": eps_255,
        "surrogate": "s" if setting == "black-box" else None,
        "n": int(correct.size),
        "top1_err": 100 * (1 - correct.mean()),
        "top5_err": 100 * (1 - top5.mean()),
        "top1_correct": bits(correct),
        "top5_correct": bits(top5),
    }


def planted(n=400, gap=0.3, seed=0):
    """ERM and mixup records on the same examples; mixup gets `gap`·n more examples right."""
    rng = np.random.default_rng(seed)
    erm = rng.random(n) < 0.4
    mix = erm.copy()
    mix[np.flatnonzero(~erm)[: int(gap * n)]] = True
    return [record("erm-t", "erm", erm), record("mix-t", "mixup", mix, alpha=1.0)]


def test_intervals_contain_the_estimate_and_shrink_with_more_examples():
    rng = np.random.default_rng(0)
    small = error_intervals([record("a", "erm", rng.random(100) < 0.6)])
    large = error_intervals([record("a", "erm", rng.random(10_000) < 0.6)])
    for df in (small, large):
        assert (df.lo <= df.err).all() and (df.err <= df.hi).all()
    assert (large.hi - large.lo).max() < (small.hi - small.lo).min() / 5


def test_intervals_are_not_degenerate_at_zero_errors():
    """At the edge the bootstrap's interval would be [0, 0]: robustmix gives the exact (Clopper–Pearson) one there."""
    boot = error_intervals([record("a", "erm", np.ones(360, bool))])
    wilson = error_intervals([record("a", "erm", np.ones(360, bool))], interval="wilson")
    assert (boot.lo == 0).all() and list(boot.hi) == pytest.approx([100 * (1 - 0.025 ** (1 / 360))] * 2) and (wilson.hi > 0.5).all()
    with pytest.raises(RobustmixError):
        error_intervals([record("a", "erm", np.ones(3, bool))], interval="normal")


def test_intervals_are_seeded():
    recs = planted()
    a, b = error_intervals(recs, seed=3), error_intervals(recs, seed=3)
    assert a.equals(b)


def test_paired_test_is_one_for_identical_predictions_and_prints_no_verdict():
    c = np.random.default_rng(1).random(300) < 0.5
    df = paired_comparisons([record("a", "erm", c), record("b", "mixup", c, alpha=1.0)])
    assert (df.p_value == 1.0).all() and (df["diff"] == 0).all()
    assert not df.significant.any() and (df.verdict == "").all()


def test_paired_test_detects_a_planted_difference_and_names_the_better_method():
    df = paired_comparisons(planted())
    assert (df.p_holm < 1e-6).all()
    assert df["diff"].iloc[0] == pytest.approx(-30.0)  # mixup − ERM, in points
    assert df.verdict.iloc[0].startswith("checkpoint mix-t (mixup (α=1)) is more robust than checkpoint erm-t (ERM)")


def test_holm_adjusts_in_order_and_caps_at_one():
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]


def test_per_example_frame_has_one_row_per_example_and_record():
    recs = planted(n=50)
    df = per_example_frame(recs)
    assert len(df) == 100 and df.top1_correct.dtype == bool
    both = df.pivot(index="example", columns="method", values="top1_correct")
    assert int((both.mixup & ~both.erm).sum()) == 15


def test_sample_pairs_is_seeded_and_respects_distinct_labels():
    y = torch.tensor([0, 0, 0, 1, 1, 2] * 10)
    i, j = sample_pairs(y, 500, seed=4)
    i2, j2 = sample_pairs(y, 500, seed=4)
    assert torch.equal(i, i2) and torch.equal(j, j2) and len(i) == 500
    assert (y[i] != y[j]).all()
    i3, j3 = sample_pairs(y, 500, seed=4, distinct_labels=False)
    assert (y[i3] == y[j3]).any() and (i3 != j3).all()
    with pytest.raises(RobustmixError):
        sample_pairs(torch.zeros(10, dtype=torch.long), 5)


def test_figure2_at_lambda_one_equals_the_quantities_on_x_i_alone(trained, digits):
    model, _ = trained
    i, j = sample_pairs(digits.y_train, 200, seed=0)
    x_i, x_j, y_i, y_j = digits.x_train[i], digits.x_train[j], digits.y_train[i], digits.y_train[j]
    grads_before = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    m = interpolation_metrics(model, x_i, x_j, y_i, y_j, [0.0, 0.5, 1.0], batch_size=64)
    pred = predict_logits(model, x_i).argmax(1)
    miss = 100.0 * ((pred != y_i) & (pred != y_j)).float().mean().item()
    grad = input_gradient(model, x_i, y_i).flatten(1).norm(dim=1).mean().item()
    assert m["miss_rate"][2] == pytest.approx(miss)
    assert m["grad_norm"][2] == pytest.approx(grad, rel=1e-4)
    # λ = 0 is x_j with target y_j: the same check from the other side.
    pred_j = predict_logits(model, x_j).argmax(1)
    assert m["miss_rate"][0] == pytest.approx(100.0 * ((pred_j != y_i) & (pred_j != y_j)).float().mean().item())
    assert m["grad_norm"][0] == pytest.approx(input_gradient(model, x_j, y_j).flatten(1).norm(dim=1).mean().item(), rel=1e-4)
    for p, g in zip(model.parameters(), grads_before):  # parameter gradients untouched
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)


def test_figure2_curves_use_the_same_pairs_for_every_model(trained, trained_mixup, digits):
    models = {"erm": trained[0], "mixup": trained_mixup[0]}
    a = figure2_curves(models, digits.x_train, digits.y_train, n_pairs=60, lams=[0, 1], seed=1)
    b = figure2_curves({"erm": trained[0]}, digits.x_train, digits.y_train, n_pairs=60, lams=[0, 1], seed=1)
    assert a[a.checkpoint == "erm"].reset_index(drop=True).equals(b)
    assert set(a.checkpoint) == {"erm", "mixup"} and (a.miss_rate >= 0).all()


def test_calibration_of_confident_right_and_confident_wrong_models():
    y = torch.arange(10).repeat(20)
    right = torch.nn.functional.one_hot(y, 10).float() * 50
    wrong = torch.nn.functional.one_hot((y + 1) % 10, 10).float() * 50
    assert calibration(right, y)["ece"] == pytest.approx(0.0, abs=1e-6)
    c = calibration(wrong, y)
    assert c["ece"] == pytest.approx(100.0, abs=1e-6)
    assert c["count"].sum() == 200 and c["count"][-1] == 200
    half = calibration(torch.zeros(200, 10), y)  # confidence 0.1, accuracy 10%
    assert half["ece"] == pytest.approx(0.0, abs=1e-6) and half["count"].max() == 200


def test_method_label_names_the_options_that_differ_from_the_defaults():
    """Two Puzzle Mix runs, one with adversarial mixing, are told apart by their labels (issue 16's
    tables printed both as "puzzle-mix (α=1)"); default options, unknown methods and ERM add nothing."""
    from robustmix.analysis.comparisons import method_label
    from robustmix.training.methods import get_method, method_options
    defaults = method_options(get_method("puzzle-mix"))
    assert method_label({"method": "puzzle-mix", "alpha": 1.0, "method_options": {**defaults, "adv_p": 0.1}}) == "puzzle-mix (α=1, adv_p=0.1)"
    assert method_label({"method": "puzzle-mix", "alpha": 1.0, "method_options": defaults}) == "puzzle-mix (α=1)"
    assert method_label({"method": "puzzle-mix", "alpha": 1.0, "method_options": {"adv_p": 0.0}}) == "puzzle-mix (α=1)"
    assert method_label({"method": "mixup", "alpha": 0.4}) == "mixup (α=0.4)"
    assert method_label({"method": "erm", "alpha": 0.0, "method_options": None}) == "ERM"
    assert method_label({"method": "not-a-method", "method_options": {"k": 1}}) == "not-a-method"
