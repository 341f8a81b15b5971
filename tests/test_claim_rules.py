"""The verdict rule of a study's claims (docs/protocol.md#verdict-rule) on small planted records, no
training: one-sided "no improvement" claims, "not testable" (ceiling, floor, premise, C5 on 10 classes),
the minimum number of seeds (and the borrowed seed variance of a one-seed arm), exact intervals at
the edges, Holm across the claims, the headline built from the claims table, and the report's
provenance (the data set named, never its path; torch per checkpoint; what the recipes add)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robustmix.analysis.comparisons import holm
from robustmix.analysis.replication import BORROWED, difference_interval, error_interval
from robustmix.analysis.stats import clopper_pearson
from robustmix.runtime.errors import RobustmixError
from robustmix.study import parse_study
from robustmix.study.claims import Claim, Study, decide, judge_claims
from robustmix.study.headline import claim_sentence, data_identity, headline_blocks, recipe_scope, scrub, torch_versions
from robustmix.study.tables import claims_table, models_table, pooled_frame
from robustmix.soundness.verdicts import INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED

from study_runs import CIFAR, DIGITS_HEAD

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports" / "cifar10"
N = 2000


def spec(seeds: dict[str, int], claims: str = "") -> object:
    """A study spec with erm, mixup, manifold-mixup and puzzle-mix targets of the given seed counts."""
    methods = {"erm": "erm", "mixup": "mixup", "manifold": "manifold-mixup", "puzzle": "puzzle-mix", "cutmix": "cutmix"}
    targets = "".join(f'[[targets]]\nname = "{n}"\nmethod = "{methods[n]}"\nseeds = {list(range(k))}\n\n' for n, k in seeds.items())
    return parse_study(DIGITS_HEAD + f"""
[surrogate]
method = "erm"
seeds = [100]
{targets}
[attack]
suite = "paper"
eps = [4]
settings = ["white-box", "black-box"]
[strong]
suite = "strong"
eps = [4]
settings = ["white-box"]
[claims]
eps = 4
margin = 2.0
{claims}
""")


def bits(err: float, seed: int, n: int = N) -> str:
    """Per-example correctness with round(n·err/100) errors at seeded random places."""
    wrong = np.random.default_rng(seed).permutation(n)[: round(n * err / 100)]
    out = np.ones(n, dtype=bool)
    out[wrong] = False
    return "".join("1" if b else "0" for b in out)


def cells(name: str, seeds: int, setting: str, attack: str, err: float, *, top5: float | None = None, spread: float = 0.3,
          n: int = N, offset: int = 0) -> list[dict]:
    """One record per seed of `name`: error `err` % ± a small seed-to-seed spread."""
    out = []
    for s in range(seeds):
        e = err + spread * (s - (seeds - 1) / 2)
        key = hash((name, setting, attack, s, offset)) % 10_000
        out.append({"target": f"{name}-s{s}", "method": name, "setting": setting, "attack": attack, "eps_255": 0.0 if setting == "clean" else 4.0,
                    "n": n, "top1_err": e, "top1_correct": bits(e, key, n), "top5_correct": bits(top5 if top5 is not None else e, key + 1, n)})
    return out


def claim(rows: list[Claim], name: str, index: int = 0) -> Claim:
    return [r for r in rows if r.claim == name][index]


# 1. one-sided "no improvement" claims ------------------------------------------------------------


def test_a_method_worse_than_erm_has_no_advantage():
    """C2 and C11's first part: the method's advantage stays below the margin, so a method that is worse
    (by more than the margin) reproduces the claim; one better by more than the margin does not."""
    s = spec({"erm": 3, "mixup": 3, "puzzle": 3})
    paper = (cells("erm", 3, "white-box", "ifgsm", 92) + cells("mixup", 3, "white-box", "ifgsm", 97)
             + cells("erm", 3, "white-box", "fgsm", 60) + cells("puzzle", 3, "white-box", "fgsm", 64))
    rows = judge_claims(Study(s, paper, [], [], None, 10))
    c2, c11 = claim(rows, "C2"), claim(rows, "C11")
    assert c2.difference > 4 and c2.lo > 2 and c2.verdict == REPRODUCED, c2  # two-sided ±2 pp: "not reproduced"
    assert c11.difference > 3 and c11.verdict == REPRODUCED, c11
    assert c2.null == -2 and c2.margin == 2 and "no improvement: advantage < 2 pp" in c2.rule
    better = (cells("erm", 3, "white-box", "ifgsm", 97) + cells("mixup", 3, "white-box", "ifgsm", 91))
    assert claim(judge_claims(Study(s, better, [], [], None, 10)), "C2").verdict == NOT_REPRODUCED


# 2. not testable ---------------------------------------------------------------------------------


def test_claims_at_the_ceiling_or_the_floor_are_not_testable():
    s = spec({"erm": 3, "mixup": 3, "manifold": 3})
    strong = cells("erm", 3, "white-box", "pgd", 99.3, n=1000) + cells("manifold", 3, "white-box", "pgd", 99.7, n=1000)
    paper = cells("erm", 3, "clean", "none", 0.5) + cells("mixup", 3, "clean", "none", 0.8)
    rows = judge_claims(Study(s, paper, strong, [], None, 10))
    pgd, c8 = claim(rows, "C9", 1), claim(rows, "C8")
    assert pgd.verdict == NOT_TESTABLE and pgd.reason.startswith("at the ceiling: every arm within 2 pp of 100%"), pgd
    assert "99.3%" in pgd.reason and pgd.difference is not None  # the numbers are still shown
    assert c8.verdict == NOT_TESTABLE and pgd.p_holm is None and "at the floor" in c8.reason, c8


def test_c12_without_mixup_s_fgsm_advantage_is_not_testable():
    s = spec({"erm": 3, "mixup": 3})
    paper = cells("erm", 3, "white-box", "fgsm", 60) + cells("mixup", 3, "white-box", "fgsm", 64)
    strong = (cells("erm", 3, "white-box", "fgsm", 60, n=1000) + cells("mixup", 3, "white-box", "fgsm", 63, n=1000)
              + cells("erm", 3, "white-box", "worst-case", 80, n=1000) + cells("mixup", 3, "white-box", "worst-case", 82, n=1000))
    c12 = claim(judge_claims(Study(s, paper, strong, [], None, 10)), "C12")
    assert c12.verdict == NOT_TESTABLE and c12.reason.startswith("premise fails: mixup has no white-box FGSM advantage"), c12
    assert "at the ceiling" not in c12.reason  # 80% is far from it


# 3. seeds ------------------------------------------------------------------------------------------


def test_a_one_seed_arm_gets_no_verdict_and_a_borrowed_seed_variance():
    s = spec({"erm": 3, "mixup": 3, "manifold": 1})
    paper = cells("erm", 3, "white-box", "fgsm", 60, spread=3) + cells("manifold", 1, "white-box", "fgsm", 40)
    c9 = claim(judge_claims(Study(s, paper, [], [], None, 10)), "C9")
    assert c9.verdict == INCONCLUSIVE and c9.reason.startswith("1 seed (manifold: 1; the rule needs 3 per arm)"), c9
    assert c9.interval == BORROWED and "borrowed from erm" in c9.note
    alone = difference_interval([r["top1_correct"] for r in paper[:3]], [paper[3]["top1_correct"]], paired_seeds=False)
    assert c9.hi - c9.lo > 1.5 * (alone.hi - alone.lo)  # the one-seed arm varies as ERM does, not by test-set noise alone
    # the borrowed variance: the one-seed arm's between-seed variance is ERM's (over one seed, ERM's df)
    erm_rates = [100 * (1 - np.mean([c == "1" for c in r["top1_correct"]])) for r in paper[:3]]
    assert c9.hi - c9.lo == pytest.approx(2 * stats.t.ppf(0.975, 2) * np.sqrt(np.var(erm_rates, ddof=1) * (1 + 1 / 3)), rel=0.05)


def test_a_spec_can_require_more_seeds_and_never_fewer_than_two():
    two = spec({"erm": 2, "mixup": 2})
    paper = cells("erm", 2, "white-box", "fgsm", 60) + cells("mixup", 2, "white-box", "fgsm", 40)
    c1 = claim(judge_claims(Study(two, paper, [], [], None, 10)), "C1")
    assert two.claims.min_seeds == 3 and c1.verdict == INCONCLUSIVE and c1.reason.startswith("2 seeds"), c1
    lowered = spec({"erm": 2, "mixup": 2}, "min_seeds = 2")
    assert claim(judge_claims(Study(lowered, paper, [], [], None, 10)), "C1").verdict == REPRODUCED
    with pytest.raises(RobustmixError, match=r"\[claims\]: min_seeds must be an integer >= 2"):
        spec({"erm": 2}, "min_seeds = 1")


# 4. exact intervals at the edges -----------------------------------------------------------------


@pytest.mark.parametrize("k, n", [(0, 1000), (3, 1000), (997, 1000), (1000, 1000), (40, 120)])
def test_clopper_pearson_is_scipy_s_exact_interval(k, n):
    ci = stats.binomtest(k, n).proportion_ci(method="exact")
    assert clopper_pearson(k, n) == pytest.approx((100 * ci.low, 100 * ci.high), abs=1e-9)


def test_rates_at_the_edge_get_exact_intervals_that_never_collapse():
    everything_wrong = [bits(100, s, 1000) for s in range(3)]
    pooled = error_interval(everything_wrong)
    assert pooled.estimate == 100 and pooled.hi == 100 and pooled.lo == pytest.approx(100 * 0.025 ** (1 / 1000))  # not [100, 100]
    one = error_interval([bits(0.6, 0, 1000)])  # 6 of 1,000: the normal approximation gives [0.1, 1.1]
    assert (one.lo, one.hi) == pytest.approx(clopper_pearson(6, 1000)) and one.lo > 0.2
    s = spec({"erm": 3, "mixup": 3})
    study = Study(s, [], cells("erm", 3, "white-box", "worst-case", 100, spread=0, n=1000), [], None, 10)
    row = pooled_frame(study.strong, study).query("metric == 'top1'").iloc[0]
    assert row.err == 100 and row.hi == 100 and row.lo < 99.7  # Table 3 prints "100.0 [99.6, 100.0]"
    d = difference_interval(everything_wrong, everything_wrong)
    assert d.hi - d.lo > 0.5 and d.p_value == 1  # Newcombe's interval at the edge, never [0, 0]


# 5. multiplicity ---------------------------------------------------------------------------------


def test_verdicts_rest_on_holm_adjusted_p_values():
    rows = [Claim(f"C{i}", "x", "", d, -1.0, -0.1, p, null=0.0) for i, (d, p) in enumerate([(-3, 0.01), (-2, 0.03), (+2, 0.04)], 1)]
    out = decide(rows + [Claim("C9", "y", NOT_TESTABLE)])
    assert [c.p_holm for c in out[:3]] == pytest.approx([0.03, 0.06, 0.06]) and out[3].p_holm is None
    assert [c.verdict for c in out] == [REPRODUCED, INCONCLUSIVE, INCONCLUSIVE, NOT_TESTABLE]
    table = claims_table(out, "protocol.md")
    assert list(table[["p", "p (Holm)"]].iloc[1]) == ["0.03", "0.06"] and table["p (Holm)"].iloc[3] == "–"


def test_the_committed_claims_csv_can_be_checked_by_hand():
    """Holm by hand on claims.csv: the rows with a p_holm are the family; sorted by p, each p times the
    number of rows not yet passed, made monotone, is p_holm; a verdict needs p_holm < 0.05."""
    df = pd.read_csv(REPORT / "data" / "claims.csv")
    family = df[df.p_holm.notna()]
    assert len(family) >= 3 and set(family.verdict) <= {REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE}
    assert np.allclose(holm(family.p_value.to_numpy()), family.p_holm.to_numpy())
    for r in family.itertuples():
        side = -np.sign(r.difference - r.null)  # +1: on the claim's side of the null
        claim_side = side > 0 if np.isnan(r.margin) else side < 0
        expected = INCONCLUSIVE if r.p_holm >= 0.05 else REPRODUCED if claim_side else NOT_REPRODUCED
        assert r.verdict == expected, r


# 6. C5 ---------------------------------------------------------------------------------------------


def test_c5_is_not_meaningful_on_ten_classes_and_judged_on_more():
    s = spec({"erm": 3, "mixup": 3})
    paper = (cells("erm", 3, "white-box", "fgsm", 60, top5=30) + cells("mixup", 3, "white-box", "fgsm", 55, top5=20))
    ten = [r for r in judge_claims(Study(s, paper, [], [], None, 10)) if r.claim == "C5"]
    assert {r.verdict for r in ten} == {NOT_TESTABLE}
    assert all(r.reason.startswith("not meaningful on ≤ 10 classes") and "top 50% of the ranking" in r.reason for r in ten)
    twenty = claim(judge_claims(Study(s, paper, [], [], None, 20)), "C5")
    assert twenty.difference == pytest.approx(-10, abs=1) and twenty.verdict == REPRODUCED


# 7. the headline is the claims table ----------------------------------------------------------------


def test_the_headline_is_the_claims_table_in_words_with_the_ceiling_and_the_tally():
    s = spec({"erm": 3, "mixup": 3})
    paper = cells("erm", 3, "white-box", "fgsm", 60) + cells("mixup", 3, "white-box", "fgsm", 64)
    strong = (cells("erm", 3, "white-box", "fgsm", 60, n=1000) + cells("mixup", 3, "white-box", "fgsm", 63, n=1000)
              + cells("erm", 3, "white-box", "worst-case", 99.9, spread=0.1, n=1000)
              + cells("mixup", 3, "white-box", "worst-case", 100, spread=0, n=1000))
    study = Study(s, paper, strong, [], None, 10)
    rows = judge_claims(study)
    blocks = headline_blocks(s, study, rows)
    assert blocks[0][1].startswith("**Under strong attacks no model is robust.**") and "ERM 99.9%, mixup (α=1) 100.0%" in blocks[0][1]
    counts = {v: sum(r.verdict == v for r in rows) for v in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)}
    assert f"{counts[REPRODUCED]} reproduced, {counts[NOT_REPRODUCED]} not reproduced, {counts[INCONCLUSIVE]} inconclusive, " \
           f"{counts[NOT_TESTABLE]} not testable" in blocks[1][1]
    table = claims_table(rows, "p.md")
    for sentence, row in zip(blocks[2][1], table.itertuples(index=False)):
        assert row.Verdict in sentence and (row.Difference == "–" or row.Difference in sentence), (sentence, row)
        assert row[5] == "–" or row[5] in sentence  # the interval, as the table prints it
    weak = Study(s, paper, [r for r in strong if r["attack"] != "worst-case"], [], None, 10)
    assert "no model is robust" not in headline_blocks(s, weak, judge_claims(weak))[0][1]


def test_the_committed_report_opens_with_its_claims_table():
    readme = (REPORT / "README.md").read_text(encoding="utf-8")
    head = readme.split("\nClaims and the rule")[0]
    for r in pd.read_csv(REPORT / "data" / "claims.csv", keep_default_na=False).itertuples():
        line = next(line for line in head.splitlines() if line.startswith(f"- {r.claim} ({r.part})"))
        assert f"**{r.verdict}**" in line, line
        if r.difference != "":
            f = "{:+.1f}" if r.unit == "pp" else "{:+.3g}"
            assert f"{f.format(float(r.difference))} {r.unit} [{f.format(float(r.lo))}, {f.format(float(r.hi))}]" in line, line
    assert "Under strong attacks no model is robust" in head and "not testable" in head


# 9. provenance and scope -----------------------------------------------------------------------------


def test_reports_name_the_data_never_its_path(tmp_path):
    root = tmp_path / "where" / "cifar10-jpeg"
    for split, name in (("train", "a.jpg"), ("test", "b.jpg")):
        (root / split / "cat").mkdir(parents=True)
        (root / split / "cat" / name).write_bytes(name.encode())
    s = parse_study(CIFAR.read_text(), dataset=f"imagefolder:{root}")
    assert s.data_label == "CIFAR-10, JPEG-recompressed copy (quality 75)"
    unnamed = re.sub(r'(?m)^name = "CIFAR-10.*$', "", CIFAR.read_text())
    assert parse_study(unnamed, dataset=f"imagefolder:{root}").data_label == "cifar10-jpeg (an image folder)"
    said = data_identity(s, {"x": {"data": {"train_examples": 1, "test_examples": 1}}}, 1)
    assert str(tmp_path) not in said and re.search(r"content sha256 [0-9a-f]{64}", said) and "1 training / 1 test images" in said
    command = f"robustmix study spec.toml --out reports/x --dataset imagefolder:{root} --stage report"
    assert scrub(command, s) == "robustmix study spec.toml --out reports/x --dataset imagefolder:$DATA --stage report"
    with pytest.raises(RobustmixError, match="name must be the data set's name, not a path"):
        parse_study(CIFAR.read_text().replace('name = "CIFAR-10', 'name = "/work/CIFAR-10'))


def test_the_report_lists_torch_per_checkpoint_and_what_the_recipes_add():
    metas = {"erm-s0": {"torch_version": "2.11.0+cu130"}, "erm-s1": {"torch_version": "2.11.0+cu130"},
             "puzzle-mix-half-s0": {"torch_version": "2.14.1+cu130"}}
    assert torch_versions(metas) == "torch 2.11.0+cu130 (2: erm-s0, erm-s1); torch 2.14.1+cu130 (1: puzzle-mix-half-s0)"
    s = parse_study(CIFAR.read_text())
    scope = recipe_scope(s)
    assert scope[0].startswith("erm, mixup, cutmix, manifold-mixup (fast-cifar-3x): label smoothing 0.2; lookahead from epoch 9")
    study = Study(s, [], [], [], None, 10)
    full = {f"{n}-s{c.seed}": {"method": c.method, "seed": c.seed, "clean_top1_err": 9.0, "torch_version": "2.11.0+cu130"}
            for n, cs in ((t.name, t.configs) for t in s.bench.targets) for c in cs}
    assert models_table(study, full)["torch per seed"].iloc[0] == "2.11.0+cu130, 2.11.0+cu130, 2.11.0+cu130"


def test_the_committed_report_prints_no_machine_path_and_every_torch():
    for path in [REPORT / "README.md", REPORT / "report.html", REPORT / "study.json", *(REPORT / "data").glob("*.csv")]:
        text = path.read_text(encoding="utf-8")
        assert "/work/" not in text and "imagefolder:/" not in text, path
    readme = (REPORT / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# robustmix study: CIFAR-10, JPEG-recompressed copy") and "content sha256 " in readme
    assert "torch 2.11.0+cu130 (9: " in readme and "torch 2.14.1+cu130 (1: puzzle-mix-half-s0)" in readme
    assert "label smoothing 0.2" in readme and "--dataset imagefolder:$DATA" in readme


def test_claim_sentences_carry_the_reason():
    c = Claim("C9", "Manifold Mixup, white-box FGSM: below ERM", INCONCLUSIVE, 0.1, -3.3, 3.6, 0.9, reason="1 seed (manifold: 1)")
    assert claim_sentence(c).startswith("C9 (Manifold Mixup, white-box FGSM: below ERM): **inconclusive**: 1 seed (manifold: 1) — difference +0.1 pp [-3.3, +3.6], p = 0.9")
