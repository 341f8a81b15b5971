"""The per-example worst case, and verdicts that obey the checks (synthetic records)."""

import pytest

from robustmix.analysis.comparisons import paired_comparisons
from robustmix.soundness.checks import Check
from robustmix.soundness.verdicts import PAPER_ONLY, sound_verdicts
from robustmix.evaluation.records import worst_case_records

N = 200


def rec(target, method, attack, wrong, eps_255=8, setting="white-box"):
    idx = set(wrong)
    bits = "".join("0" if i in idx else "1" for i in range(N))
    return {"target": target, "method": method, "alpha": None if method == "erm" else 1.0, "setting": setting, "attack": attack,
            "eps": eps_255 / 255, "eps_255": eps_255, "n": N, "top1_correct": bits, "top5_correct": bits, "iters": 10}


def test_worst_case_is_wrong_where_any_attack_is_wrong():
    recs = [rec("a", "erm", "fgsm", range(0, 10)), rec("a", "erm", "pgd", range(5, 30)), rec("a", "erm", "square", [100])]
    (w,) = worst_case_records(recs)
    assert w["attack"] == "worst-case" and w["attacks"] == ["fgsm", "pgd", "square"]
    wrong = {i for i, b in enumerate(w["top1_correct"]) if b == "0"}
    assert wrong == set(range(0, 30)) | {100}
    assert w["top1_err"] == pytest.approx(100 * 31 / N)


def paper():
    """FGSM/I-FGSM records where target b looks far more robust than a."""
    return [rec("a", "erm", "fgsm", range(0, 80)), rec("a", "erm", "ifgsm", range(0, 90)),
            rec("b", "mixup", "fgsm", range(0, 10)), rec("b", "mixup", "ifgsm", range(0, 12))]


def verdicts(records, checks):
    records = records + worst_case_records(records)
    return sound_verdicts(paired_comparisons(records), checks, records)


def rows(df, attack):
    return df[(df.attack == attack) & (df.metric == "top1")]


def passing(*targets):
    return [Check(c, t, "pass", "fine") for t in targets for c in ("iterative", "gradients")]


def test_paper_suite_verdicts_say_they_rest_on_fgsm_alone():
    df = verdicts(paper(), passing("a", "b"))
    # a worst case over FGSM and I-FGSM alone is no strong-suite evidence
    for attack in ("fgsm", "ifgsm", "worst-case"):
        row = rows(df, attack).iloc[0]
        assert row.significant and row.status == "paper suite only", attack
        assert PAPER_ONLY in row.sound_verdict


def test_a_failed_check_makes_the_verdict_inconclusive_with_numbers():
    checks = passing("a") + [Check("gradients", "b", "fail", "180 of 200 examples have an all-zero input gradient at x")]
    df = verdicts(paper(), checks)
    for attack in ("fgsm", "ifgsm", "worst-case"):
        row = rows(df, attack).iloc[0]
        assert row.significant and row.status == "inconclusive"
        assert "inconclusive: gradients check failed for mixup (α=1) — possible gradient masking" in row.sound_verdict
        assert "180 of 200" in row.sound_verdict and "docs/protocol.md#check-gradients" in row.sound_verdict


def test_strong_suite_overrules_fgsm():
    # b looks robust to FGSM/I-FGSM, but PGD fools both equally: the worst case shows no difference
    recs = paper() + [rec("a", "erm", "pgd", range(0, 150)), rec("b", "mixup", "pgd", range(0, 150))]
    df = verdicts(recs, passing("a", "b"))
    fgsm = rows(df, "fgsm").iloc[0]
    assert fgsm.significant and fgsm.status == "not supported"
    assert "not supported by the worst case" in fgsm.sound_verdict
    assert not rows(df, "worst-case").iloc[0].significant


def test_strong_suite_supports_a_real_difference():
    recs = paper() + [rec("a", "erm", "pgd", range(0, 150)), rec("b", "mixup", "pgd", range(0, 40))]
    df = verdicts(recs, passing("a", "b"))
    assert rows(df, "fgsm").iloc[0].status == "supported"
    assert "supported by the worst case" in rows(df, "fgsm").iloc[0].sound_verdict
    assert rows(df, "worst-case").iloc[0].status == "supported"


def test_without_a_worst_case_the_verdict_is_marked_paper_only():
    recs = [rec("a", "erm", "fgsm", range(0, 80)), rec("b", "mixup", "fgsm", range(0, 10))]
    row = rows(verdicts(recs, passing("a", "b")), "fgsm").iloc[0]
    assert row.status == "paper suite only" and PAPER_ONLY in row.sound_verdict


# --- outside a study: verdicts about checkpoints (issue 34, item 10) ------------------------------


def test_paired_verdicts_name_the_checkpoints_and_say_methods_need_seeds():
    from robustmix.reporting.text import render_verdicts

    df = verdicts(paper(), passing("a", "b"))
    row = rows(df, "fgsm").iloc[0]
    assert row.sound_verdict.startswith("checkpoint b (mixup (α=1)) is more robust than checkpoint a (ERM) to white-box FGSM")
    text = render_verdicts(df)
    assert "about the checkpoints compared (one training run each" in text and "needs several training seeds per method" in text
    assert "`robustmix study`" in text


def test_paired_verdicts_at_the_ceiling_or_floor_are_not_testable():
    # a: 99.5% wrong, b: 98.5% (3 of 200 right vs 1): significant by McNemar? not needed: both are at the ceiling
    recs = [rec("a", "erm", "pgd", range(0, 200)), rec("b", "mixup", "pgd", range(0, 197)),
            rec("a", "erm", "fgsm", range(0, 80)), rec("b", "mixup", "fgsm", range(0, 10))]
    recs += [dict(r, setting="clean", attack="none", eps_255=0, eps=0.0) for r in (rec("a", "erm", "x", [1, 2]), rec("b", "mixup", "x", []))]
    df = sound_verdicts(paired_comparisons(recs).assign(significant=True), passing("a", "b"), recs)
    pgd, clean = rows(df, "pgd").iloc[0], df[(df.setting == "clean") & (df.metric == "top1")].iloc[0]
    assert pgd.status == "not testable" and "at the ceiling: every arm within 2 pp of 100%" in pgd.sound_verdict
    assert clean.status == "not testable" and "at the floor" in clean.sound_verdict
    assert rows(df, "fgsm").iloc[0].status == "paper suite only"  # 40% vs 5%: far from both bounds


def test_a_paired_interval_at_the_edge_is_never_of_zero_width():
    from robustmix.analysis.stats import paired_difference

    same = "1" * 200
    d = paired_difference(same, same)
    assert d.diff == 0 and d.hi - d.lo > 1 and d.p_value == 1
