"""The fast recipe through the trainer: trains in seconds and deterministically, float32 mode is the
plain loop (bf16 changes nothing there), the whitening stem comes from the data and stays frozen,
every method runs under it, resume is bit-identical, and `--recipe auto` chooses as documented."""

import contextlib
import json
import re
from pathlib import Path

import pytest
import torch

from robustmix.training import precision
from robustmix.cli import main
from robustmix.training.config import TrainConfig
from robustmix.data import augment_batch, pixels, prepare_dataset, shuffled_batches
from robustmix.data.sources import make_dataset
from robustmix.training.methods import METHODS, soft_cross_entropy
from robustmix.training.methods.mixing import one_hot
from robustmix.models import build_model
from robustmix.models.whiten import whitening_filters
from robustmix.training.recipes import RECIPES, auto_recipe, resolve_config
from robustmix.training.resume import load_state
from robustmix.training.build import lr_factor
from robustmix.training.loop import train


@contextlib.contextmanager
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits16(digits):
    """The digits at 16×16, so translate and all three poolings act."""
    return make_dataset("digits16", digits.x_train, digits.y_train, digits.x_test, digits.y_test, digits.classes, image_size=16)


def fast(**changes) -> TrainConfig:
    base = dict(dataset="digits16", width=8, epochs=3, batch_size=64, lookahead_after=1, whiten_bias_epochs=1,
                augment="altflip-translate", device="cpu")
    return resolve_config("fast-cifar", **dict(base, **changes))


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_fast_recipe_trains_in_seconds_and_is_deterministic(digits16):
    with one_thread():
        a, meta = train(fast(epochs=4, augment="none"), data=digits16)
        b, again = train(fast(epochs=4, augment="none"), data=digits16)
    assert meta["clean_top1_err"] < 25, meta["history"]  # 90% is chance; 16% measured (4.4% after 6 epochs)
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "same seed, same thread count, same weights"
    assert [r["train_loss"] for r in meta["history"]] == [r["train_loss"] for r in again["history"]]
    assert meta["channels_last"] and meta["amp"] == "none" and meta["processor"] and meta["stem"]["whitening_images"] == 1437
    assert meta["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
    assert meta["config"]["optimizer"] == "decoupled-sgd" and meta["recipe"] == "fast-cifar"
    assert meta["torch_threads"] == 1, "the thread count the weights depend on is recorded"
    assert a.whiten.weight.is_contiguous(), "the returned model is in the usual layout"


def reference_weights(cfg: TrainConfig, digits):
    """The foundation's plain loop (float32, NCHW, SGD on the mean soft cross-entropy), written out."""
    data, _ = prepare_dataset(digits, train_subset=cfg.train_subset, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, in_channels=1, num_classes=10, image_size=8, mean=data.mean, std=data.std)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    n = data.x_train.shape[0]
    steps = -(-n // cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config=cfg, steps_per_epoch=steps))
    for _ in range(cfg.epochs):
        model.train()
        for idx in shuffled_batches(n, cfg.batch_size, gen):
            x = pixels(augment_batch("none", data.x_train[idx], gen))
            loss = soft_cross_entropy(model(x), one_hot(data.y_train[idx], 10))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return weights(model)


def test_bf16_training_changes_nothing_in_float32_mode(digits, monkeypatch):
    cfg = TrainConfig(epochs=2, train_subset=300, seed=5, device="cpu")
    with one_thread():
        expected = reference_weights(cfg, digits)
        got = weights(train(cfg, data=digits)[0])
        monkeypatch.setattr(precision, "cpu_has_amx", lambda: False)
        auto = weights(train(cfg.with_(amp="auto"), data=digits)[0])
        bf16, meta = train(cfg.with_(amp="bf16", epochs=1), data=digits)
    assert all(torch.equal(got[k], expected[k]) for k in expected), "amp none: bit-identical to the plain loop"
    assert all(torch.equal(auto[k], expected[k]) for k in expected), "amp auto without AMX is float32"
    assert meta["amp"] == "bf16" and all(p.dtype == torch.float32 for p in bf16.parameters())
    assert meta["clean_top1_err"] < 90 and all(torch.isfinite(p).all() for p in bf16.parameters())


def test_whitening_stem_comes_from_the_data_and_is_frozen(digits16, tmp_path):
    state = tmp_path / "state.safetensors"
    seen = []

    def on_epoch(row, history):
        tensors, _ = load_state(state)
        seen.append({k: tensors[f"model.{k}"] for k in ("whiten.weight", "whiten.bias", "group1.norm1.weight")})

    with one_thread():
        model, meta = train(fast(epochs=3), data=digits16, state_path=state, on_epoch=on_epoch)
    pick = torch.randperm(1437, generator=torch.Generator().manual_seed(0))
    expected, _ = whitening_filters(model.normalize(pixels(digits16.x_train[pick])))
    assert torch.allclose(model.whiten.weight, expected, atol=1e-6), "the stem is the data's patch whitening"
    for s in seen:  # frozen: the same stem after every epoch
        assert torch.equal(s["whiten.weight"], seen[0]["whiten.weight"]) and torch.equal(s["group1.norm1.weight"], torch.ones(8))
    assert not torch.equal(seen[0]["whiten.bias"], torch.zeros(16)), "the bias learns in its epoch"
    assert torch.equal(seen[1]["whiten.bias"], seen[0]["whiten.bias"]) and torch.equal(seen[2]["whiten.bias"], seen[0]["whiten.bias"])
    assert torch.equal(model.whiten.bias, seen[0]["whiten.bias"])
    other = make_dataset("other", digits16.x_train.flip(-2), digits16.y_train, digits16.x_test, digits16.y_test, digits16.classes)
    with one_thread():
        flipped, _ = train(fast(epochs=1), data=other)
    assert not torch.allclose(flipped.whiten.weight, model.whiten.weight, atol=1e-3), "other data, other stem"


class Stop(Exception):
    pass


def test_fast_recipe_resumes_bit_identical(digits16, tmp_path):
    state = tmp_path / "state.safetensors"

    def stop_after_2(row, history):
        if row["epoch"] == 2:
            raise Stop

    with one_thread():
        full, meta = train(fast(epochs=4), data=digits16)
        with pytest.raises(Stop):
            train(fast(epochs=4), data=digits16, state_path=state, on_epoch=stop_after_2)
        tensors, _ = load_state(state)
        assert any(k.startswith("lookahead.") for k in tensors), "the lookahead average is in the resume state"
        resumed, again = train(fast(epochs=4), data=digits16, state_path=state, resume=True)
    a, b = weights(full), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a) and again["resumed_at_epoch"] == 2
    assert [r["train_loss"] for r in meta["history"]] == [r["train_loss"] for r in again["history"]]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_under_the_fast_recipe(method, digits16):
    model, meta = train(fast(method=method, width=4, epochs=1, train_subset=200, test_subset=50, batch_size=64,
                             label_noise=0.1 if method == "erm" else 0.0), data=digits16)
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in meta["history"]) and meta["method"] == method


def test_triangle_schedule():
    cfg = resolve_config("fast-cifar")
    f = [lr_factor(s, config=cfg, steps_per_epoch=49) for s in range(490)]
    peak = int(0.23 * 490)
    assert f[0] == pytest.approx(0.2) and f[peak] == pytest.approx(1.0) and max(f) == pytest.approx(1.0)
    assert f[-1] == pytest.approx(0.07, abs=0.003) and lr_factor(490, config=cfg, steps_per_epoch=49) == pytest.approx(0.07)


# (C, H, W), training images -> recipe and the values the data changes; the table in docs/guides/train.md.
AUTO = [
    ((1, 8, 8), 1_437, "small-cnn", {}),  # digits
    ((3, 8, 8), 50_000, "small-cnn", {}),
    ((3, 32, 32), 50_000, "fast-cifar", {}),  # CIFAR-10/100
    ((3, 32, 32), 73_257, "fast-cifar", {}),  # SVHN
    ((1, 28, 28), 60_000, "fast-cifar", {"width": 32}),  # MNIST, Fashion-MNIST
    ((1, 28, 28), 1_437, "fast-cifar", {"width": 32, "batch_size": 128, "epochs": 25, "lookahead_after": 8}),
    ((3, 32, 32), 25_000, "fast-cifar", {"batch_size": 1024, "epochs": 12, "lookahead_after": 4}),
    ((3, 32, 32), 10_000, "fast-cifar", {"batch_size": 1024, "epochs": 30, "lookahead_after": 9}),
    ((3, 64, 64), 300, "fast-cifar", {"batch_size": 128, "epochs": 100, "lookahead_after": 30}),
]


PARTS = {r"width (\d+)": "width", r"batch (\d+)": "batch_size", r"(\d+) epochs": "epochs", r"lookahead after (\d+)": "lookahead_after"}


def documented_auto_recipes() -> list[tuple]:
    """The rows of the table in docs/guides/train.md ("### The automatic recipe") as AUTO rows."""
    text = (Path(__file__).parent.parent / "docs" / "guides" / "train.md").read_text()
    table = text.split("### The automatic recipe", 1)[1].split("\n\n")[2]
    rows = []
    for line in table.splitlines()[2:]:
        shape, n, _, recipe, adapted = (c.strip() for c in line.strip("|").split("|"))
        values = {}
        for part in ([] if adapted == "–" else adapted.split(", ")):
            (key, number), = [(k, m.group(1)) for p, k in PARTS.items() if (m := re.fullmatch(p, part))]
            values[key] = int(number)
        rows.append((tuple(int(v) for v in shape.split("×")), int(n.replace(",", "")), recipe, values))
    return rows


def test_the_documented_table_is_the_code():
    assert sorted(documented_auto_recipes(), key=repr) == sorted(AUTO, key=repr)


@pytest.mark.parametrize("shape,n,recipe,values", AUTO)
def test_auto_recipe_is_chosen_as_documented(shape, n, recipe, values):
    name, adapt, why = auto_recipe(shape, n)
    assert (name, adapt) == (recipe, values) and f"{shape[1]}×{shape[2]}" in why
    cfg = resolve_config("auto", auto=(shape, n), dataset="cifar10")
    assert cfg.recipe == recipe and cfg.recipe_reason.startswith("auto: ")
    expected = dict(RECIPES[recipe], **values)
    assert all(getattr(cfg, k) == v for k, v in expected.items() if k != "dataset")
    assert resolve_config("auto", auto=(shape, n), dataset="cifar10", epochs=2, model="cnn").epochs == 2, "explicit flags win"


def test_auto_recipe_keeps_flips_off_digit_sets():
    assert resolve_config("auto", auto=((3, 32, 32), 50_000), dataset="cifar10").augment == "altflip-translate"
    assert resolve_config("auto", auto=((3, 32, 32), 73_257), dataset="svhn").augment == "translate"
    assert resolve_config("fast-cifar", dataset="svhn", augment="altflip-translate").augment == "altflip-translate"


def test_cli_default_is_the_auto_recipe_and_records_why(tmp_path, capsys):
    out = tmp_path / "ck"
    assert main(["train", "--epochs", "1", "--train-subset", "100", "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["recipe"] == "small-cnn" and "8×8" in meta["recipe_reason"] and meta["config"]["model"] == "cnn"
    assert "small-cnn" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "auto (default) chooses from the data" in " ".join(capsys.readouterr().out.split())
