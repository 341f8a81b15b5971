"""The soundness checks on synthetic records: each check passes a sound evaluation and flags the
symptom it is there for, with the numbers behind it."""

import pytest

from robustmix.soundness.checks import CHECKS, Margins, soundness_checks

N = 100


def rec(attack, eps_255, wrong, *, setting="white-box", target="t", **extra):
    """A record whose first `wrong` examples (or the given indices) are misclassified."""
    idx = set(range(wrong)) if isinstance(wrong, int) else set(wrong)
    bits = "".join("0" if i in idx else "1" for i in range(N))
    return {"target": target, "setting": setting, "attack": attack, "eps_255": eps_255, "eps": eps_255 / 255,
            "n": N, "top1_correct": bits, "top5_correct": bits, "iters": extra.pop("iters", 10), **extra}


def probes(target="t", *, unbounded=100, zero=0, nonfinite=0, diff=0.0, probabilities=False, converged=None):
    out = [
        rec("pgd", 128, unbounded, target=target, probe="unbounded", num_classes=10),
        {"target": target, "setting": "white-box", "attack": "none", "probe": "gradients", "n": N, "zero": zero, "nonfinite": nonfinite},
        {"target": target, "setting": "white-box", "attack": "none", "probe": "model", "rerun_max_diff": diff, "probabilities": probabilities},
    ]
    if converged is not None:
        out.append(rec("pgd", 8, converged, target=target, probe="converged", iters=80, restarts=2))
    return out


def sound(target="t"):
    """A strong-suite evaluation with no symptom."""
    r = []
    for e, k in ((4, 20), (8, 40)):
        r += [rec("fgsm", e, k // 2, target=target), rec("ifgsm", e, k - 5, target=target), rec("pgd", e, k, target=target, restarts=1, iters=40),
              rec("apgd-ce", e, k, target=target), rec("apgd-dlr", e, k, target=target), rec("square", e, k - 2, target=target),
              rec("fgsm", e, k // 4, target=target, setting="black-box"), rec("ifgsm", e, k // 4, target=target, setting="black-box")]
    return r + probes(target, converged=40)


def by_name(checks):
    return {c.check: c for c in checks}


def test_a_sound_evaluation_passes_every_check_with_links():
    checks = soundness_checks(sound())
    assert [c.check for c in checks] == list(CHECKS)
    for c in checks:
        assert c.status == "pass", c
        assert c.link == f"docs/protocol.md#check-{c.check}"
        assert c.detail


def test_fgsm_beating_iterative_fails_and_counts_examples():
    r = sound()
    r = [x for x in r if not (x["attack"] == "ifgsm" and x["eps_255"] == 8 and x["setting"] == "white-box")]
    r.append(rec("ifgsm", 8, range(10, 20)))  # 10% error, FGSM has 20%, and 10 of FGSM's are not in it
    c = by_name(soundness_checks(r))["iterative"]
    assert c.status == "fail"
    assert c.numbers["fgsm_only"] == 10 and c.numbers["err_fgsm"] == 20 and c.numbers["err_iterative"] == 10
    assert "FGSM fools 10 example(s)" in c.detail


def test_a_small_shortfall_is_a_warning():
    r = [rec("fgsm", 4, 10), rec("ifgsm", 4, 9)]
    assert by_name(soundness_checks(r))["iterative"].status == "warn"  # 1 pp: within the margin
    assert by_name(soundness_checks(r, margins=Margins(iterative_pp=0.5)))["iterative"].status == "fail"


def test_transfer_beating_white_box_fails():
    r = sound() + [rec("fgsm", 4, range(50, 90), setting="black-box")]  # 40% black-box vs 20% white-box
    r = [x for x in r if not (x["setting"] == "black-box" and x["attack"] == "fgsm" and x["eps_255"] == 4 and x["top1_correct"].count("0") == 5)]
    c = by_name(soundness_checks(r))["transfer"]
    assert c.status == "fail" and c.numbers["black_box_only"] == 40


def test_square_beating_gradient_attacks_fails_beyond_the_margin():
    r = [x for x in sound() if not (x["attack"] == "square" and x["eps_255"] == 8)] + [rec("square", 8, 60)]
    c = by_name(soundness_checks(r))["gradient-free"]
    assert c.status == "fail" and c.numbers["gradient_free_only"] == 20 and c.numbers["best_gradient_attack"] in ("pgd", "apgd-ce", "apgd-dlr")


def test_error_falling_with_eps_fails():
    r = [rec("pgd", 4, 30), rec("pgd", 8, 20), rec("pgd", 16, 50)]
    c = by_name(soundness_checks(r))["monotone"]
    assert c.status == "fail" and c.numbers["err"] == [30, 20]


def test_unbounded_attack_below_chance_fails_and_below_100_warns():
    assert by_name(soundness_checks(sound()[:-4] + probes(unbounded=50)))["unbounded"].status == "fail"
    assert by_name(soundness_checks(sound()[:-4] + probes(unbounded=95)))["unbounded"].status == "warn"


def test_doubling_iterations_moving_the_error_fails():
    c = by_name(soundness_checks(sound()[:-4] + probes(converged=48)))["converged"]
    assert c.status == "fail" and c.numbers["err"] == 40 and c.numbers["err_doubled"] == 48


def test_zero_or_nonfinite_gradients_fail():
    assert by_name(soundness_checks(sound()[:-4] + probes(zero=90)))["gradients"].status == "fail"
    assert by_name(soundness_checks(sound()[:-4] + probes(nonfinite=1)))["gradients"].status == "warn"


@pytest.mark.parametrize("kw", [{"diff": 0.1}, {"probabilities": True}])
def test_randomized_or_probability_outputs_fail(kw):
    assert by_name(soundness_checks(sound()[:-4] + probes(**kw)))["deterministic"].status == "fail"


def test_checks_that_cannot_be_computed_are_skipped():
    checks = by_name(soundness_checks([rec("fgsm", 4, 10)]))
    assert {k: c.status for k, c in checks.items()} == {k: "skip" for k in CHECKS}


def test_a_model_at_the_ceiling_reads_not_informative_and_a_study_s_checks_grid_shows_it():
    """Every attack fools every example: checks 1, 5 and 6 could not fail, so they are "not informative";
    the study report's grid and summary (robustmix.study.tables) show it (they raised on it before)."""
    from robustmix.study.tables import checks_grid, checks_summary

    recs = [rec("fgsm", 8, N), rec("pgd", 8, N), *probes(converged=N)]
    checks = soundness_checks(recs)
    status = {c.check: c.status for c in checks}
    assert status["iterative"] == status["converged"] == status["unbounded"] == "not informative", status
    rows = [{**c.to_dict(), "suite": suite} for suite in ("paper", "strong") for c in checks]
    rows[0] = {**rows[0], "status": "pass"}  # one suite informative: the grid shows its status
    cells = {k.split("]")[0][1:]: v for k, v in checks_grid(rows, "docs/protocol.md").iloc[0].items() if k != "Checkpoint"}
    assert cells["iterative"] == "pass" and cells["converged"] == "not informative"
    assert cells["converged"].cls == "st st-not-informative" and "strong suite: not informative" in cells["converged"].tip
    assert ", 5 not informative (at the ceiling, where the check could not fail)" in checks_summary(rows)
