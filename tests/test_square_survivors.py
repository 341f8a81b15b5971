"""Square on survivors (EvalConfig.square_on = "survivors", `robustmix attack --square-on`, the spec
key `square_on`): Square queries only the examples no white-box gradient attack fooled, as AutoAttack
runs each attack on the points still robust. Checked: no query on a fooled example, the same
per-example worst case as Square on every example (per-example noise: an attacked example gets the
x_adv it gets in the full batch), the plan's order, the labels, the gradient-free check graded on
the examples only Square fools, and the option's round trip through the CLI and the spec."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from robustmix.attacks import ATTACKS, SUITES, WORST, Budget, Crafting, attack_label
from robustmix.attacks.budget import SQUARE_ON
from robustmix.gate.spec import parse_spec
from robustmix.store.checkpoint import Checkpoint, save_checkpoint
from robustmix.cli import main
from robustmix.runtime.errors import RobustmixError
from robustmix.evaluation.evaluator import EvalConfig, evaluate
from robustmix.evaluation.plan import build_plan
from robustmix.reporting.tables import render_markdown
from robustmix.store.results import load_results
from robustmix.soundness.checks import soundness_checks
from robustmix.evaluation.records import as_bool
from robustmix.study import parse_study
from robustmix.study.attacking import same_setup, setup_of
from robustmix.evaluation.transfer import crafting_of

ROOT = Path(__file__).resolve().parents[1]
GRADIENT_FREE = [a for a, at in ATTACKS.items() if at.gradient_free]  # Square
GRADIENT = [a for a in SUITES["strong"] if a in ATTACKS and not ATTACKS[a].gradient_free]  # what runs before it on survivors
EPS = (8 / 255, 16 / 255)
N = 60
BUDGET = dict(pgd_iters=5, pgd_restarts=1, apgd_iters=5, square_queries=150)


class RoundedInput(nn.Module):
    """A planted case of gradient masking (as tests/test_masking.py plants one, but blind to every
    loss, DLR included): the checkpoint on its input rounded to the digits' 17 grey levels. Clean
    digits are on those levels, so the predictions are the checkpoint's; round's derivative is zero,
    so every input gradient is zero and only random starts and Square can move it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 16) / 16)


class Queried(nn.Module):
    """Wraps a model and records, for every row it is asked about, which clean example it is a
    perturbation of (the one example within eps in L∞)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, eps: float):
        super().__init__()
        self.model, self.x, self.eps, self.rows = model, x.flatten(1), eps, []
        self.train(model.training)  # as the model it wraps: an attack hands it back in that mode

    def forward(self, z):
        near = (z.flatten(1)[:, None, :] - self.x[None]).abs().amax(2) <= self.eps + 1e-6
        assert (near.sum(1) == 1).all(), "a row is not a perturbation of exactly one example"
        self.rows.append(near.float().argmax(1))
        return self.model(z)


def fooled(r: dict) -> torch.Tensor:
    return torch.from_numpy(~as_bool(r["top1_correct"]))


@pytest.fixture(scope="module")
def runs(trained, digits):
    """Per square_on: the records of the strong suite (small budget, no probes: the gradient-free
    check reads the attack records) on an ERM model and its masked copy, and every Square craft
    call (the mask it got, the examples it queried, what it made)."""
    model, meta = trained
    targets = [Checkpoint("erm", model, meta), Checkpoint("masked", RoundedInput(model).eval(), {**meta, "method": "erm-masked"})]
    x, y = digits.x_test[:N], digits.y_test[:N]
    real = ATTACKS["square"].craft
    out = {}
    for on in SQUARE_ON:
        calls = []

        def spy(job: Crafting, eps: tuple[float, ...]) -> torch.Tensor:
            q = Queried(job.model, job.x, max(eps))
            adv = real(dataclasses.replace(job, model=q), eps)
            name = "masked" if isinstance(job.model, RoundedInput) else "erm"
            calls.append({"target": name, "eps": eps, "x": job.x, "only": job.only, "adv": adv,
                          "queried": set(torch.cat(q.rows).tolist()) if q.rows else set()})
            return adv

        config = EvalConfig(eps=EPS, attacks=SUITES["strong"], settings=("white-box",), square_on=on, **BUDGET)
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(ATTACKS, "square", dataclasses.replace(ATTACKS["square"], craft=spy))
            records = evaluate(targets, x, y, config)
        by = {(r["target"], r["attack"], r["eps"]): r for r in records if r["setting"] != "clean"}
        out[on] = by, records, calls
    return out


def test_square_queries_only_the_examples_no_gradient_attack_fooled(runs):
    by, _, calls = runs["survivors"]
    assert len(calls) == 2  # one chunk, one call per target
    skipped = 0
    for c in calls:
        alive = torch.stack([~torch.stack([fooled(by[(c["target"], g, e)]) for g in GRADIENT]).any(0) for e in c["eps"]])
        assert torch.equal(c["only"].cpu(), alive)  # the mask is "correct under every gradient attack"
        assert c["queried"] == set(alive.any(0).nonzero().view(-1).tolist())  # no query on any other example
        rest = ~alive
        assert torch.equal(c["adv"][rest], c["x"].unsqueeze(0).expand_as(c["adv"])[rest])  # those keep x
        skipped += int(rest.any(0).sum())
    assert skipped > 0
    every = {c["target"]: c["queried"] for c in runs["all"][2]}
    assert every == {"erm": set(range(N)), "masked": set(range(N))}  # "all": every example, as before


def test_the_worst_case_is_the_same_on_survivors(runs):
    a, s = runs["all"][0], runs["survivors"][0]
    extra = 0
    for t in ("erm", "masked"):
        for e in EPS:
            assert a[(t, WORST, e)]["top1_correct"] == s[(t, WORST, e)]["top1_correct"], (t, e)
            union = torch.stack([fooled(s[(t, g, e)]) for g in GRADIENT]).any(0)
            worst = fooled(s[(t, WORST, e)])
            assert (worst | union).equal(worst)  # ⊇ the gradient attacks' union
            # on the examples it attacked, Square fools exactly what Square on every example fools
            assert fooled(s[(t, "square", e)])[~union].equal(fooled(a[(t, "square", e)])[~union])
            extra += int((worst & ~union).sum())
    assert extra > 0  # Square fooled examples the gradient attacks missed (the masked model): still the same worst case


def test_square_records_carry_the_marker_and_the_label(runs):
    _, records, _ = runs["survivors"]
    square = [r for r in records if r["attack"] in GRADIENT_FREE]
    assert square and all(r["square_on"] == "survivors" for r in square)
    assert all("square_on" not in r for r in runs["all"][1])  # "all": records as before the option existed
    text = render_markdown(records)
    assert "| Square (on survivors) |" in text and "on the examples no gradient attack fooled" in text
    assert "Square (on survivors)" not in render_markdown(runs["all"][1])
    assert attack_label("square", "survivors") == "Square (on survivors)" and attack_label("pgd", "survivors") == "PGD"


def test_gradient_free_check_flags_square_fooling_survivors(runs):
    for on in SQUARE_ON:
        _, records, _ = runs[on]
        c = next(c for c in soundness_checks(records) if c.target == "masked" and c.check == "gradient-free")
        assert c.status == "fail" and c.numbers["gradient_free_only"] > 0, c.detail
        assert ("survivors" in c.detail) == (on == "survivors")


@pytest.mark.parametrize("square_on", SQUARE_ON)
def test_gradient_free_check_grades_survivors_on_the_examples_only_square_fools(square_on):
    """Square (on survivors) fools 2 of 100 examples no gradient attack fools: 2 pp beyond them, a
    fail, although its error (12%) is far below PGD's (40%); on every example the same error passes."""
    def rec(attack, wrong, **extra):
        bits = "".join("0" if i in wrong else "1" for i in range(100))
        return {"target": "t", "setting": "white-box", "attack": attack, "eps_255": 8, "eps": 8 / 255, "n": 100,
                "top1_correct": bits, "top5_correct": bits, "iters": 10, **extra}
    marker = {"square_on": "survivors"} if square_on == "survivors" else {}
    for extra, status in (((), "pass"), ((50, 51), "fail")):
        records = [rec("fgsm", set(range(30))), rec("pgd", set(range(40))), rec("square", {*range(10), *extra}, **marker)]
        c = next(c for c in soundness_checks(records) if c.check == "gradient-free")
        assert c.status == (status if square_on == "survivors" else "pass"), c.detail


@pytest.mark.parametrize("name", GRADIENT_FREE)
def test_an_attacked_example_gets_the_perturbation_it_gets_in_the_full_batch(name, trained, digits):
    model = trained[0]
    x, y = digits.x_test[:64], digits.y_test[:64]
    index = torch.arange(300, 364)  # positions in a larger set: the noise follows them
    job = Crafting(model, x, y, 10, budget=Budget(square_queries=40, seed=3), index=index)
    eps = (8 / 255, 16 / 255)
    full = ATTACKS[name].craft(job, eps)
    only = torch.rand(2, 64, generator=torch.Generator().manual_seed(0)) < 0.4  # a different subset per eps
    part = ATTACKS[name].craft(dataclasses.replace(job, only=only), eps)
    assert torch.equal(part[only], full[only])  # bit for bit
    assert torch.equal(part[~only], x.unsqueeze(0).expand_as(part)[~only])
    assert not torch.equal(full[~only], part[~only])
    q = Queried(model, x, max(eps))
    none = ATTACKS[name].craft(dataclasses.replace(job, model=q, only=torch.zeros(2, 64, dtype=torch.bool)), eps)
    assert q.rows == [] and torch.equal(none, x.unsqueeze(0).expand_as(none))  # nothing to attack: no query


@pytest.mark.parametrize("gradient", GRADIENT)
def test_plan_runs_square_after_the_gradient_attacks_on_survivors(gradient):
    attacks = [*GRADIENT_FREE, gradient]  # Square asked for first
    for on in SQUARE_ON:
        plan = build_plan(["t"], None, attacks=attacks, eps=EPS, iters=10, settings=("white-box",), budget=Budget(square_on=on))
        first = {a: min(i for i, p in enumerate(plan) if p.attack == a) for a in attacks}
        last = {a: max(i for i, p in enumerate(plan) if p.attack == a) for a in attacks}
        if on == "survivors":
            assert all(first[s] > last[gradient] for s in GRADIENT_FREE)
            assert any("on the survivors" in p.what and "at most" in p.what for p in plan if p.attack in GRADIENT_FREE)
        else:  # "all": the order asked for, as before
            assert all(last[s] < first[gradient] for s in GRADIENT_FREE)


def test_black_box_square_on_survivors_is_refused_in_one_line():
    with pytest.raises(RobustmixError, match="white-box only") as e:
        EvalConfig(attacks=SUITES["strong"], square_on="survivors").validate()
    assert "\n" not in str(e.value)
    EvalConfig(attacks=("fgsm", "ifgsm"), square_on="survivors").validate()  # no Square: nothing to refuse
    with pytest.raises(RobustmixError, match="unknown square_on 'some'"):
        EvalConfig(square_on="some").validate()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, trained):
    d = tmp_path_factory.mktemp("survivors")
    return d, str(save_checkpoint(d / "erm", *trained))


@pytest.mark.parametrize("on", SQUARE_ON)
def test_cli_flag_reaches_the_results_file(on, ckpt, capsys, monkeypatch):
    d, path = ckpt
    monkeypatch.chdir(d)
    argv = ["attack", "--targets", path, "--settings", "white-box", "--attacks", "fgsm,square,worst-case", "--eps", "16",
            "--examples", "60", "--square-queries", "20", "--square-on", on, "--out", f"{on}.json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    doc = load_results(d / f"{on}.json")
    assert doc["config"]["square_on"] == on
    assert [r.get("square_on") for r in doc["records"] if r["attack"] == "square"] == [None if on == "all" else on]
    assert ("Square (on survivors)" in out) == (on == "survivors")


@pytest.mark.parametrize("argv,needle", [(["--square-on", "some"], "--square-on"),
                                         (["--suite", "strong", "--square-on", "survivors"], "white-box only")])
def test_cli_bad_square_on_is_one_line_exit_2(argv, needle, ckpt, capsys, monkeypatch):
    d, path = ckpt
    monkeypatch.chdir(d)
    try:
        code = main(["attack", "--targets", path, "--surrogate", path, *argv])
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err


SPEC = """
[[targets]]
name = "erm"
method = "erm"
[attack]
suite = "strong"
settings = ["white-box"]
"""


def test_spec_key_round_trip_and_an_unchanged_hash_by_default():
    spec = parse_spec(SPEC + 'square_on = "survivors"\n')
    assert spec.eval.square_on == "survivors" and spec.canonical()["attack"]["square_on"] == "survivors"
    plain, explicit = parse_spec(SPEC), parse_spec(SPEC + 'square_on = "all"\n')
    assert plain.eval.square_on == "all" and "square_on" not in plain.canonical()["attack"]
    assert plain.hash == explicit.hash != spec.hash  # the default: the hash (and the gate's baseline) as before
    with pytest.raises(RobustmixError, match=r"\[attack\]: unknown square_on 'some'"):
        parse_spec(SPEC + 'square_on = "some"\n')
    with pytest.raises(RobustmixError, match="white-box only"):
        parse_spec(SPEC.replace('settings = ["white-box"]\n', "") + 'square_on = "survivors"\n')


def test_study_strong_key_and_results_made_before_the_option_are_reused():
    text = (ROOT / "benchmarks" / "study-digits.toml").read_text()
    spec = parse_study(text.replace("square_queries = 20\n", 'square_queries = 20\nsquare_on = "survivors"\n'))
    assert spec.strong.square_on == "survivors" and setup_of(spec, "strong")["square_on"] == "survivors"
    plain = parse_study(text)
    setup = setup_of(plain, "strong")
    older = {k: v for k, v in setup.items() if k != "square_on"}  # a results file written before square_on existed
    assert same_setup(older, setup) and not same_setup(older, setup_of(spec, "strong"))
    assert "square_on" not in crafting_of(plain.strong)  # stored black-box examples: unaffected
