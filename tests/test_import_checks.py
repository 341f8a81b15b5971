"""The import diagnoses on their own: synthetic logits and a 3-channel toy model (for BGR), plus
no false alarm on correct models."""

import pytest
import torch
from torch import nn

from robustmix.data import Dataset
from robustmix.importing.conventions import FLAGS, _far_lower, class_order_problem, probabilities_problem, run_checks
from robustmix.importing.sources import Normalization, normalization
from robustmix.models.imported import ImportedModel

CLI = FLAGS["cli"]


def confident_logits(y: torch.Tensor, k: int, column_of=None) -> torch.Tensor:
    """Logits that put example i's mass on column column_of[y[i]] (identity by default)."""
    cols = y if column_of is None else torch.tensor(column_of)[y]
    return nn.functional.one_hot(cols, k).float() * 5


Y = torch.arange(200) % 10


# (error as declared, error under the alternative) -> far lower? Real cases: a weak CIFAR-10 FastCNN
# imported without its normalisation (88.1% vs 45.0%, README) and fed RGB while trained on BGR (69.7% vs 45.0%).
FAR = {(88.1, 45.0): True, (69.7, 45.0): True, (10.0, 4.0): True, (36.4, 0.0): True,
       (45.0, 44.0): False, (45.0, 30.0): False, (6.0, 2.0): False, (50.0, 49.0): False}


@pytest.mark.parametrize("err,alt", sorted(FAR))
def test_far_lower(err, alt):
    assert _far_lower(err, alt) is FAR[(err, alt)]


def test_identity_order_is_not_a_problem():
    assert class_order_problem(confident_logits(Y, 10), Y, [str(i) for i in range(10)], CLI) == (None, None)


def test_a_swapped_pair_is_named_with_the_order_that_fixes_it():
    column_of = list(range(10))
    column_of[3], column_of[7] = 7, 3  # class 3 comes out of output 7 and back
    msg, order = class_order_problem(confident_logits(Y, 10, column_of), Y, [f"c{i}" for i in range(10)], CLI)
    assert order == [0, 1, 2, 7, 4, 5, 6, 3, 8, 9]
    assert "output 3 is 'c7', output 7 is 'c3'" in msg and "--class-order 0,1,2,7,4,5,6,3,8,9" in msg
    assert msg.startswith("clean error 20.0%, 0.0% with the outputs matched")


def test_the_suggested_order_is_for_the_raw_outputs_when_an_order_is_already_applied():
    """If the user gave a wrong order, the fix replaces it (it is not relative to it)."""
    raw_of = [2, 0, 1, 3, 4, 5, 6, 7, 8, 9]  # raw output of class c
    given = [0, 2, 1, 3, 4, 5, 6, 7, 8, 9]  # a wrong --class-order: raw output k is class given[k]
    raw = confident_logits(Y, 10, raw_of)
    index = torch.tensor(given).argsort()  # what ImportedModel does with class_order=given
    _, order = class_order_problem(raw.index_select(1, index), Y, [str(i) for i in range(10)], CLI, current=given)
    # the correct order: raw output k stands for the class c with raw_of[c] == k
    assert order == torch.tensor(raw_of).argsort().tolist()


def test_a_poor_but_honest_model_is_not_called_permuted():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 10, generator=g) + 1.5 * confident_logits(Y, 10) / 5  # about 50% error
    assert class_order_problem(logits, Y, [str(i) for i in range(10)], CLI) == (None, None)


def test_probabilities_are_refused_and_logits_or_log_probabilities_are_not():
    logits = torch.randn(50, 10, generator=torch.Generator().manual_seed(0))
    assert probabilities_problem(logits, 10.0, CLI) is None
    assert probabilities_problem(logits.log_softmax(1), 10.0, CLI) is None
    assert probabilities_problem(logits.sigmoid(), 10.0, CLI) is None  # in [0, 1] but rows do not sum to 1
    assert "outputs probabilities" in probabilities_problem(logits.softmax(1), 10.0, CLI)


def colour_data(n=90) -> Dataset:
    """3 classes: the image's brightest channel (R, G or B)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = 0.2 * torch.rand(n, 3, 4, 4, generator=g)
    x[torch.arange(n), y] += 0.7
    return Dataset("colours", x, y, x, y, ("red", "green", "blue"), (0.43, 0.43, 0.43), (0.33, 0.33, 0.33))


class Brightest(nn.Module):
    """Logits = the mean of each channel, in the channel order it was 'trained' on."""

    def __init__(self, bgr: bool):
        super().__init__()
        self.bgr = bgr
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        means = x.mean((2, 3)) * self.scale
        return means.flip(1) if self.bgr else means


def test_bgr_model_fed_rgb_is_diagnosed_as_bgr_not_as_a_permutation():
    data = colour_data()
    norm = normalization(3, (data.mean, data.std))
    model = ImportedModel(Brightest(bgr=True), norm.mean, norm.std)
    found = run_checks(model, data, norm, device=torch.device("cpu"))
    assert found.top1 > 60
    assert "with the colour channels reversed: the model expects BGR input; add --bgr" in found.problems[0]
    fixed = ImportedModel(Brightest(bgr=True), norm.mean, norm.std, bgr=True)
    assert run_checks(fixed, data, Normalization("none", norm.mean, norm.std, True), device=torch.device("cpu")).problems == []


@pytest.mark.parametrize("fixture", ["trained", "trained_mixup"])
def test_correct_models_pass_every_check(fixture, request, digits):
    """The trained robustmix models normalise their own input: imported as they are, nothing is flagged."""
    model, meta = request.getfixturevalue(fixture)
    norm = normalization(1, (digits.mean, digits.std))
    found = run_checks(ImportedModel(model, norm.mean, norm.std), digits, norm, device=torch.device("cpu"))
    assert found.problems == [] and found.notes == []
    assert found.top1 == pytest.approx(meta["clean_top1_err"])
    assert found.alternatives["dataset"] > found.top1 + 20  # a second normalisation hurts: the check has teeth


def test_the_model_is_handed_back_in_its_mode(trained, digits):
    model = ImportedModel(trained[0], (0.0,), (1.0,)).train()
    try:
        run_checks(model, digits, Normalization("none", (0.0,), (1.0,)), device=torch.device("cpu"))
        assert model.training
    finally:
        model.eval()
