"""Nested eps (EvalConfig.nest_eps, `robustmix attack --nest-eps`, the spec key `nest_eps`): white-box,
each attack whose registry entry nests runs the eps in increasing order and, above the smallest eps,
attacks only the examples it left at the next smaller one; the others carry the image that fooled
them there. Checked on a trained digits model, for every such attack of the registry, against the
looped run (--no-stack-eps, not nested): the smallest eps is the stand-alone record, every larger eps
is the stand-alone record on the examples attacked again and fooled on the others (so never weaker,
per example), the rows attacked are exactly those, and the records say so; the strong suite's worst
case is never weaker than the looped run's; the same seed gives the same records; the plan counts
the passes that run; the checks treat nested records as docs/protocol.md#nested-eps says."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from robustmix.attacks import ATTACKS, SUITES, WORST, Crafting
from robustmix.cli import main
from robustmix.evaluation.evaluator import EvalConfig, evaluate, plan_evaluation
from robustmix.evaluation.plan import render_plan, total_cost
from robustmix.evaluation.records import as_bool
from robustmix.evaluation.transfer import crafting_of
from robustmix.gate.spec import parse_spec
from robustmix.runtime.errors import RobustmixError
from robustmix.soundness.checks import check_monotone, Margins
from robustmix.store.checkpoint import Checkpoint, save_checkpoint
from robustmix.store.results import load_results
from robustmix.study import parse_study

NESTING = [a for a, at in ATTACKS.items() if at.nests]  # PGD, APGD-CE, APGD-DLR, APGD-T, Square
EPS = (24 / 255, 16 / 255, 32 / 255)  # given out of order: nesting runs them in increasing order
UP = sorted(EPS)
N = 60
BUDGET = dict(pgd_iters=4, pgd_restarts=2, apgd_iters=6, target_classes=3, square_queries=40)


def fooled(r: dict) -> torch.Tensor:
    return torch.from_numpy(~as_bool(r["top1_correct"]))


def bits(r: dict, key: str) -> torch.Tensor:
    return torch.from_numpy(as_bool(r[key]))


class Counting(torch.nn.Module):
    """Counts the rows a model sees in passes that will be differentiated (each followed by one backward)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.backward_rows = model, 0
        self.train(model.training)

    def forward(self, x):
        self.backward_rows += x.shape[0] if (torch.is_grad_enabled() and x.requires_grad) else 0
        return self.model(x)


def test_the_registry_says_which_attacks_nest():
    assert set(NESTING) == {"pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square"}
    assert set(NESTING) < set(SUITES["strong"])  # the strong suite's attacks with passes of their own per eps


@pytest.fixture(scope="module")
def runs(trained, digits):
    """Per nesting attack: (nested records, looped records, the craft calls of the nested run)."""
    model, meta = trained
    target = Checkpoint("erm", model, meta)
    x, y = digits.x_test[:N], digits.y_test[:N]
    out = {}
    for attack in NESTING:
        calls = []
        real = ATTACKS[attack].craft

        def spy(job: Crafting, eps: tuple[float, ...], real=real, calls=calls) -> torch.Tensor:
            calls.append({"eps": eps, "only": None if job.only is None else job.only.clone()})
            return real(job, eps)

        nested = EvalConfig(eps=EPS, attacks=(attack,), settings=("white-box",), nest_eps=True, **BUDGET)
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(ATTACKS, attack, dataclasses.replace(ATTACKS[attack], craft=spy))
            got = evaluate([target], x, y, nested)
        looped = evaluate([target], x, y, dataclasses.replace(nested, nest_eps=False, stack_eps=False))
        by = lambda records: {r["eps"]: r for r in records if r["attack"] == attack}  # noqa: E731
        out[attack] = by(got), by(looped), calls
    return out


@pytest.mark.parametrize("attack", NESTING)
def test_nested_records_are_the_stand_alone_ones_where_attacked_and_fooled_elsewhere(attack, runs):
    nested, looped, _ = runs[attack]
    small = UP[0]
    assert nested[small] == looped[small]  # the smallest eps: the stand-alone record, bit for bit
    assert "nested" not in nested[small]
    skipped = 0
    for before, e in zip(UP, UP[1:]):
        got, want = nested[e], looped[e]
        assert got["nested"] is True and "nested" not in want
        again = ~fooled(nested[before])  # the examples attacked again at e
        for key in ("top1_correct", "top5_correct"):
            assert torch.equal(bits(got, key)[again], bits(want, key)[again]), (e, key)  # the stand-alone run's outcome
        assert fooled(got)[~again].all()  # the others: fooled by the image carried from the smaller eps
        assert (fooled(got) | fooled(want)).equal(fooled(got))  # so never weaker than the stand-alone run, per example
        assert got["top1_err"] >= want["top1_err"]
        skipped += int((~again).sum())
    assert skipped > 0, "no example was fooled at a smaller eps: the test would show nothing"


@pytest.mark.parametrize("attack", NESTING)
def test_each_larger_eps_attacks_exactly_the_survivors_of_the_smaller(attack, runs):
    nested, _, calls = runs[attack]
    assert [c["eps"] for c in calls] == [(e,) for e in UP]  # one eps per call, in increasing order
    assert calls[0]["only"] is None  # the smallest eps: every example
    for call, before in zip(calls[1:], UP):
        assert torch.equal(call["only"].view(-1).cpu(), ~fooled(nested[before]))


def test_the_strong_suite_nested_is_never_weaker_and_its_checks_and_probes_match(trained, digits):
    """The whole suite with Square on survivors and the checks' probes: the worst case per example
    (top-1) at least the looped run's; the converged probe is nested as the run's PGD is."""
    model, meta = trained
    target = Checkpoint("erm", model, meta)
    x, y = digits.x_test[:N], digits.y_test[:N]
    config = EvalConfig(eps=EPS, attacks=SUITES["strong"], settings=("white-box",), square_on="survivors", nest_eps=True,
                        probe_examples=30, pgd_iters=3, pgd_restarts=1, apgd_iters=5, target_classes=2, square_queries=30)
    probes = []
    got = evaluate([target], x, y, config, probes=probes)
    looped = evaluate([target], x, y, dataclasses.replace(config, nest_eps=False, stack_eps=False), probes=[])
    worst = {r["eps"]: r for r in got if r["attack"] == WORST}
    for e, r in worst.items():
        want = next(q for q in looped if q["attack"] == WORST and q["eps"] == e)
        assert (fooled(r) | fooled(want)).equal(fooled(r)), e
        assert r.get("nested") is (True if e > UP[0] else None)  # provenance of its members
    for r in got:
        should = r["attack"] in NESTING and r["eps"] > UP[0]
        assert bool(r.get("nested")) == (should or (r["attack"] == WORST and r["eps"] > UP[0])), (r["attack"], r["eps"])
    converged = [p for p in probes if p.get("probe") == "converged"]
    assert {p["eps"]: bool(p.get("nested")) for p in converged} == {e: e > UP[0] for e in UP}
    assert not any(p.get("nested") for p in probes if p.get("probe") == "unbounded")


def test_the_same_seed_gives_the_same_nested_records(trained, digits, runs):
    model, meta = trained
    x, y = digits.x_test[:N], digits.y_test[:N]
    for attack in ("pgd", "square"):  # random starts, random squares
        config = EvalConfig(eps=EPS, attacks=(attack,), settings=("white-box",), nest_eps=True, batch_size=45, **BUDGET)
        again = {r["eps"]: r for r in evaluate([Checkpoint("erm", model, meta)], x, y, config) if r["attack"] == attack}
        assert again == runs[attack][0]  # and another batch size (so other chunks) changes nothing


def test_the_plan_counts_the_passes_that_run(trained, digits):
    """APGD-CE (one restart) does iters + 1 forward+backward passes per row it attacks: the nested run
    does them on every example at the smallest eps and on the survivors above it: between the plan's
    count for "every example fooled at the smallest eps" and its count for "none" (APGD-CE stops for
    nothing, so both are exact counts)."""
    model, meta = trained
    counting = Counting(model).eval()
    x, y = digits.x_test[:N], digits.y_test[:N]
    config = EvalConfig(eps=EPS, attacks=("apgd-ce",), settings=("white-box",), nest_eps=True, checks=False, apgd_iters=6)
    records = evaluate([Checkpoint("erm", counting, meta)], x, y, config)
    survivors = sum(int((~fooled(r)).sum()) for r in records if r["attack"] == "apgd-ce" and r["eps"] < UP[-1])
    assert counting.backward_rows == 7 * (N + survivors)  # (no FGSM: no shared gradient at x)
    plan, chunk = plan_evaluation(["erm"], None, config, 500)
    crafts = [p for p in plan if p.kind == "craft"]
    assert [(p.eps, p.after) for p in crafts] == [((UP[0],), None), ((UP[1],), UP[0]), ((UP[2],), UP[1])]
    most = total_cost(plan)[1] * N
    least = most - sum(p.backward_cost for p in crafts if p.after is not None) * N
    assert least <= counting.backward_rows <= most and least < most
    text = render_plan(plan, n_examples=N, chunk=chunk)
    assert "eps 24/255 on the examples it left at 16/255" in text
    (f, b), (sf, sb) = total_cost(plan), total_cost([p for p in crafts if p.after is not None])
    assert f"nested eps (APGD-CE): the passes 'on the examples it left' run only on those: at most {f - sf} forward + {b - sb} backward" in text


def test_nothing_nests_without_the_option_with_one_eps_or_black_box(trained, digits):
    model, meta = trained
    x, y = digits.x_test[:20], digits.y_test[:20]
    t = Checkpoint("erm", model, meta)
    for config in (EvalConfig(eps=EPS, attacks=("pgd",), settings=("white-box",), **BUDGET),
                   EvalConfig(eps=(16 / 255,), attacks=("pgd",), settings=("white-box",), nest_eps=True, **BUDGET)):
        assert not any(r.get("nested") for r in evaluate([t], x, y, config))
    bb = EvalConfig(eps=EPS, attacks=("pgd",), settings=("black-box",), nest_eps=True, **BUDGET)
    assert not any(r.get("nested") for r in evaluate([t], x, y, bb, surrogate=Checkpoint("sur", model, meta)))
    assert "nest_eps" not in crafting_of(bb)  # a surrogate's (black-box) examples do not depend on it


def test_monotone_leaves_nested_records_out_and_a_cascade_is_not_nested():
    def rec(attack, e, wrong, **extra):
        return {"target": "t", "setting": "white-box", "attack": attack, "eps_255": e, "n": 4, "top1_correct": "1" * (4 - wrong) + "0" * wrong,
                "top5_correct": "1111", **extra}

    falling = [rec("pgd", 8, 3), rec("pgd", 16, 1)]
    recs = {(r["setting"], r["attack"], r["eps_255"]): r for r in falling}
    assert check_monotone(recs, "t", Margins()).status == "fail"
    recs[("white-box", "pgd", 16)] = {**falling[1], "nested": True}
    assert check_monotone(recs, "t", Margins()).status == "skip"  # nothing left to compare
    with pytest.raises(RobustmixError, match="nest_eps does not combine with a cascade"):  # AutoAttack runs every eps in full
        EvalConfig(eps=(8 / 255, 16 / 255), attacks=SUITES["autoattack"], settings=("white-box",), cascade=True, nest_eps=True).validate()


def test_the_option_on_the_command_line_and_in_specs(trained, tmp_path, monkeypatch, capsys):
    model, meta = trained
    path = str(save_checkpoint(tmp_path / "erm", model, meta))
    monkeypatch.chdir(tmp_path)
    argv = ["attack", "--targets", path, "--settings", "white-box", "--eps", "16,32", "--attacks", "pgd,square", "--pgd-iters", "2",
            "--pgd-restarts", "1", "--square-queries", "5", "--examples", "20"]
    assert main([*argv, "--nest-eps", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "eps 32/255 on the examples it left at 16/255" in out and "nested eps (PGD, Square)" in out
    assert main([*argv, "--nest-eps", "--out", "r.json"]) == 0
    doc = load_results(tmp_path / "r.json")
    assert doc["config"]["nest_eps"] is True
    assert {(r["attack"], r["eps_255"]) for r in doc["records"] if r.get("nested")} == {("pgd", 32), ("square", 32)}
    assert "nested over eps (PGD, Square)" in capsys.readouterr().out
    assert main(["attack", "--targets", path, "--minimal", "--nest-eps"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--nest-eps does not apply to --minimal" in err[0]
    spec = ('[data]\ndataset = "digits"\n[train]\nepochs = 1\n[[targets]]\nname = "erm"\nmethod = "erm"\nseeds = [0]\n'
            '[attack]\nsuite = "strong"\neps = [16, 32]\nsettings = ["white-box"]\n')
    plain = parse_spec(spec)
    nested = parse_spec(spec + "nest_eps = true\n")
    assert nested.eval.nest_eps is True and plain.eval.nest_eps is False
    assert "nest_eps" not in plain.canonical()["attack"] and nested.hash != plain.hash  # at the default: the hash as before
    with pytest.raises(RobustmixError, match="nest_eps must be true or false"):
        parse_spec(spec + 'nest_eps = "yes"\n')
    study = parse_study(spec.replace("[attack]\nsuite = \"strong\"", "[attack]\nsuite = \"paper\"")
                        + "[strong]\neps = [8, 16, 32]\nnest_eps = true\nsettings = [\"white-box\"]\n[claims]\neps = 16\n")
    assert study.strong.nest_eps is True and study.strong.eps == (8 / 255, 16 / 255, 32 / 255)
