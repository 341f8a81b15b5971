"""Adversarial training (robustmix.training.adversarial, robustmix.training.guard): each composition's
loss is the one docs/guides/train.md#adversarial-training states, on a tiny batch; the settings resolve
and refuse as documented; the guard fires on a planted collapse and its warning reaches meta.json;
weight averaging and resume; labels and provenance. The positive control (a model that resists, seen by
the strong suite and its checks) is tests/test_positive_control.py."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustmix import TrainConfig, train
from robustmix.analysis.comparisons import method_label
from robustmix.gate.spec import parse_spec
from robustmix.runtime.errors import RobustmixError
from robustmix.training import guard as overfitting
from robustmix.training.adversarial import KINDS, adversarial_step, perturb, resolve
from robustmix.training.methods import get_method, soft_cross_entropy
from robustmix.training.methods.mixing import cutmix, mixup, one_hot

EPS = 32 / 255


def tiny_net(classes: int = 4) -> nn.Module:
    """No BatchNorm: crafting in train mode then changes nothing, so a loss can be recomputed exactly."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, classes))


def batch(n: int = 8, classes: int = 4):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 6, 6, generator=g), torch.arange(n) % classes


def setting(kind: str, method: str = "erm", **kw):
    return resolve(TrainConfig(method=method, adversarial=kind, adv_eps=EPS, **kw))


def step(s, method_name: str, model, x, y, seed: int = 5, classes: int = 4):
    return adversarial_step(s, get_method(method_name), model, model, x, y, num_classes=classes, alpha=1.0,
                            gen=torch.Generator().manual_seed(seed), amp="none", smoothing=0.0, layout=lambda t: t)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_crafted_examples_stay_in_the_ball_and_in_the_box(kind):
    model, (x, y) = tiny_net(), batch()
    s = setting(kind)
    x_adv = perturb(model, x, one_hot(y, 4), s, torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= s.eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert not torch.equal(x_adv, x)
    assert all(p.grad is None for p in model.parameters())  # the input gradient alone


def test_pgd_at_with_erm_trains_on_the_crafted_batch():
    model, (x, y) = tiny_net(), batch()
    s = setting("pgd")
    loss, logits, y_soft = step(s, "erm", model, x, y)
    gen = torch.Generator().manual_seed(5)
    x_adv = perturb(model, x, one_hot(y, 4), s, gen)
    assert torch.allclose(loss, soft_cross_entropy(model(x_adv), one_hot(y, 4)))
    assert torch.equal(y_soft, one_hot(y, 4))
    # and it is not the clean loss
    assert not torch.allclose(loss, soft_cross_entropy(model(x), one_hot(y, 4)))


def test_mixup_composes_as_interpolated_adversarial_training():
    """IAT: craft on the clean, unmixed batch; mix clean and adversarial with fresh draws; mean of the two losses."""
    model, (x, y) = tiny_net(), batch()
    s = setting("pgd", "mixup")
    assert s.compose == "iat"
    loss, _, _ = step(s, "mixup", model, x, y)
    gen = torch.Generator().manual_seed(5)
    x_adv = perturb(model, x, one_hot(y, 4), s, gen)
    xc, yc = mixup(x, y, num_classes=4, alpha=1.0, gen=gen)
    xa, ya = mixup(x_adv, y, num_classes=4, alpha=1.0, gen=gen)
    want = 0.5 * (soft_cross_entropy(model(xc), yc) + soft_cross_entropy(model(xa), ya))
    assert torch.allclose(loss, want)


def test_cutmix_composes_by_crafting_on_the_mixed_input():
    """Rebuffi et al.: mix first, craft on the mixed input against its soft target, train on it."""
    model, (x, y) = tiny_net(), batch()
    s = setting("pgd", "cutmix")
    assert s.compose == "mixed"
    loss, _, y_soft = step(s, "cutmix", model, x, y)
    gen = torch.Generator().manual_seed(5)
    xm, ym = cutmix(x, y, num_classes=4, alpha=1.0, gen=gen)
    x_adv = perturb(model, xm, ym, s, gen)
    assert torch.allclose(loss, soft_cross_entropy(model(x_adv), ym)) and torch.equal(y_soft, ym)


def test_trades_loss_is_clean_cross_entropy_plus_beta_kl():
    model, (x, y) = tiny_net(), batch()
    s = setting("trades", trades_beta=3.0)
    loss, _, _ = step(s, "erm", model, x, y)
    gen = torch.Generator().manual_seed(5)
    x_adv = perturb(model, x, one_hot(y, 4), s, gen)
    nat, adv = model(x), model(x_adv)
    kl = F.kl_div(F.log_softmax(adv, 1), F.softmax(nat, 1), reduction="batchmean")
    assert torch.allclose(loss, F.cross_entropy(nat, y) + 3.0 * kl)
    assert kl > 0


def test_the_compositions_resolve_and_refuse_as_documented():
    assert setting("fgsm-rs", "manifold-mixup").compose == "iat"
    assert setting("pgd", "puzzle-mix").compose == "mixed"
    assert setting("pgd", "mixup", adv_compose="mixed").compose == "mixed"
    assert setting("trades", "mixup").compose == "mixed"
    assert setting("pgd").compose == ""
    with pytest.raises(RobustmixError, match="manifold-mixup mixes inside the network"):
        setting("pgd", "manifold-mixup", adv_compose="mixed")
    with pytest.raises(RobustmixError, match="trades composes .* 'mixed' only"):
        setting("trades", "mixup", adv_compose="iat")
    with pytest.raises(RobustmixError, match="adv_eps"):
        resolve(TrainConfig(adversarial="pgd"))
    with pytest.raises(RobustmixError, match="adversarial must be one of"):
        resolve(TrainConfig(adversarial="fgsm", adv_eps=EPS))
    with pytest.raises(RobustmixError, match="fgsm-rs takes one step"):
        setting("fgsm-rs", adv_steps=3)


def test_defaults_are_the_papers():
    pgd, fast, trades = setting("pgd"), setting("fgsm-rs"), setting("trades")
    assert (pgd.steps, round(pgd.step * 255, 6), pgd.mode, pgd.start) == (10, 8.0, "train", "uniform")  # 2.5·32/10
    assert (fast.steps, round(fast.step * 255, 6), fast.mode, fast.guard) == (1, 40.0, "train", True)  # 1.25·eps
    assert (trades.mode, trades.start, trades.beta, trades.guard) == ("eval", "normal", 6.0, False)
    assert pgd.label == "PGD-AT (ε = 32/255, 10 steps)" and fast.label == "FGSM-RS (ε = 32/255)"
    assert setting("pgd", adv_mode="eval").mode == "eval"


def rows(*pairs):
    return [{"epoch": i + 1, "guard_pgd_acc": p, "guard_fgsm_acc": f} for i, (p, f) in enumerate(pairs)]


def test_the_guard_detects_a_fall_against_the_best_epoch_and_a_gap_between_fgsm_and_pgd():
    assert overfitting.collapse(rows((40.0, 45.0))) is None
    assert overfitting.collapse(rows((40.0, 45.0), (35.0, 44.0), (41.0, 47.0))) is None
    assert overfitting.collapse(rows((40.0, 45.0), (45.0, 50.0), (20.0, 30.0))) == "guard PGD accuracy fell to 20.0% (best 45.0%)"
    assert overfitting.collapse(rows((50.0, 55.0), (38.0, 45.0), (28.0, 35.0)))  # a slide over two epochs: 22 below the best
    # the signature of catastrophic overfitting in the first epoch: FGSM barely hurts, PGD breaks everything
    assert overfitting.collapse(rows((0.0, 48.5))) == "guard FGSM accuracy 48.5% but PGD accuracy 0.0%"


def test_the_guard_fires_on_a_planted_collapse_and_its_warning_reaches_meta(monkeypatch, tmp_path):
    """A planted collapse: the guard's PGD accuracy reads 60%, 65%, then 5% (as after catastrophic
    overfitting); training rolls back to epoch 2's weights, stops, and meta.json says so."""
    from robustmix.training.resume import load_state

    reads = iter([60.0, 65.0, 5.0, 70.0])
    monkeypatch.setattr(overfitting, "check", lambda *a, **k: {"guard_pgd_acc": next(reads), "guard_fgsm_acc": 70.0})
    cfg = TrainConfig(adversarial="fgsm-rs", adv_eps=EPS, epochs=4, device="cpu", seed=0, train_subset=400)
    state = tmp_path / "resume.safetensors"
    model, meta = train(cfg, state_path=state)
    assert meta["epochs_trained"] == 2 and len(meta["history"]) == 3 and meta["history"][-1]["rolled_back"]
    assert meta["warnings"] == ["catastrophic overfitting at epoch 3: guard PGD accuracy fell to 5.0% (best 65.0%); "
                                "rolled back to epoch 2 and stopped"]
    assert meta["history"][0]["guard_fgsm_acc"] == 70.0
    assert meta["data"]["guard_held_out"] == 40  # a tenth of the 400 training images, never trained on
    tensors, info = load_state(state)  # written after epoch 2, the last good one (not after the collapse)
    assert info["epoch"] == 2
    assert all(torch.equal(v, tensors[f"model.{k}"]) for k, v in model.state_dict().items())


def test_a_collapse_in_the_first_epoch_ends_training_with_one_line(monkeypatch):
    """As seen on CIFAR-10 with fast-cifar's learning rate: after one epoch FGSM accuracy 48.5%, PGD 0%."""
    monkeypatch.setattr(overfitting, "check", lambda *a, **k: {"guard_pgd_acc": 0.0, "guard_fgsm_acc": 48.5})
    with pytest.raises(RobustmixError, match="catastrophic overfitting in epoch 1, the first: guard FGSM accuracy 48.5% but PGD "
                                             "accuracy 0.0%; no epoch to roll back to"):
        train(TrainConfig(adversarial="fgsm-rs", adv_eps=EPS, epochs=3, device="cpu", seed=0, train_subset=300))


def test_weight_average_is_what_is_saved_and_resume_is_bit_identical(tmp_path):
    cfg = TrainConfig(method="mixup", adversarial="pgd", adv_eps=EPS, adv_steps=2, ema_decay=0.9, epochs=3, device="cpu",
                      seed=2, train_subset=300)
    whole, meta = train(cfg)
    assert meta["ema_decay"] == 0.9 and meta["adversarial"]["compose"] == "iat"
    state = tmp_path / "resume.safetensors"
    train(cfg.with_(epochs=3), state_path=state)  # writes the state after each epoch
    from robustmix.training.resume import load_state

    tensors, info = load_state(state)
    assert any(k.startswith("ema.") for k in tensors) and info["epoch"] == 3
    # interrupted after 2 epochs, resumed: bit-identical to the uninterrupted run
    state2 = tmp_path / "r2.safetensors"
    cut = cfg.with_(epochs=3)
    import robustmix.training.loop as loop

    real = loop.run_epoch
    calls = {"n": 0}

    def stop_after_two(t, epoch, on_step):
        if calls["n"] == 2:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(t, epoch, on_step)

    loop.run_epoch = stop_after_two
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cut, state_path=state2)
    finally:
        loop.run_epoch = real
    resumed, _ = train(cut, state_path=state2, resume=True)
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
    # the saved weights are the average's, not the last trained ones
    plain, _ = train(cfg.with_(ema_decay=0.0))
    assert not all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), plain.state_dict().values()))


def test_labels_and_provenance_name_the_adversarial_setting(tmp_path):
    from robustmix import save_checkpoint
    from robustmix.cli import main
    from robustmix.store.results import load_results

    model, meta = train(TrainConfig(adversarial="pgd", adv_eps=EPS, adv_steps=2, epochs=1, device="cpu", seed=1, train_subset=200))
    assert meta["adversarial"]["label"] == "PGD-AT (ε = 32/255, 2 steps)" and meta["network_passes_per_batch"] == 3
    assert method_label(meta) == "ERM + PGD-AT (ε = 32/255, 2 steps)"
    assert method_label({"method": "mixup", "alpha": 1.0, "adversarial": "FGSM-RS (ε = 8/255), IAT"}) == \
        "mixup (α=1) + FGSM-RS (ε = 8/255), IAT"
    save_checkpoint(tmp_path / "adv", model, meta)
    out = tmp_path / "r.json"
    assert main(["attack", "--targets", str(tmp_path / "adv"), "--settings", "white-box", "--eps", "8", "--iters", "2",
                 "--examples", "60", "--out", str(out)]) == 0
    records = load_results(out)["records"]
    assert {r["adversarial"] for r in records} == {"PGD-AT (ε = 32/255, 2 steps)"}


def test_the_cli_takes_adv_eps_on_the_255_scale_and_refuses_bad_values(tmp_path, capsys):
    from robustmix.cli import main

    out = tmp_path / "m"
    assert main(["train", "--dataset", "digits", "--adversarial", "fgsm-rs", "--adv-eps", "32", "--epochs", "1",
                 "--train-subset", "300", "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["adv_eps"] == pytest.approx(32 / 255) and meta["adversarial"]["eps_255"] == 32
    header = (out / "log.csv").read_text().splitlines()[0].split(",")
    assert {"guard_pgd_acc", "guard_fgsm_acc"} <= set(header)
    capsys.readouterr()
    assert main(["train", "--dataset", "digits", "--adversarial", "pgd", "--adv-eps", "300", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "adv_eps" in err and not (tmp_path / "x").exists()


def test_auto_chooses_the_radius_from_the_data(tmp_path):
    from robustmix.training.recipes import resolve_config

    assert resolve_config("auto", auto=((1, 8, 8), 1437), adversarial="pgd").adv_eps == pytest.approx(32 / 255)
    mnist = resolve_config("auto", auto=((1, 28, 28), 60000), adversarial="pgd")
    assert mnist.adv_eps == pytest.approx(0.3) and mnist.label_smoothing == 0.0
    cifar = resolve_config("auto", auto=((3, 32, 32), 50000), adversarial="fgsm-rs")
    assert cifar.adv_eps == pytest.approx(8 / 255) and "8/255" in cifar.recipe_reason
    assert resolve_config("auto", auto=((3, 32, 32), 50000), adversarial="pgd", adv_eps=4 / 255).adv_eps == pytest.approx(4 / 255)
    assert not resolve_config("auto", auto=((3, 32, 32), 50000)).adversarial


def test_a_spec_writes_adv_eps_on_the_255_scale():
    spec = parse_spec('[data]\ndataset = "digits"\n[attack]\nsettings = ["white-box"]\n[train]\nepochs = 1\n[[targets]]\nname = "a"\nadversarial = "pgd"\nadv_eps = 32\n')
    assert spec.targets[0].configs[0].adv_eps == pytest.approx(32 / 255)
    with pytest.raises(RobustmixError, match="adv_eps must be a number on the 0–255 scale"):
        parse_spec('[data]\ndataset = "digits"\n[attack]\nsettings = ["white-box"]\n[[targets]]\nname = "a"\nadversarial = "pgd"\nadv_eps = 300\n')


def test_the_guard_warning_reaches_the_study_models_table():
    from types import SimpleNamespace

    from robustmix.study.tables import models_table

    base = {"method": "erm", "role": "target", "recipe": "fast-cifar-adv", "model": "whiten_cnn", "augment": "translate",
            "epochs": 15, "clean_top1_err": 20.0, "train_seconds": 100.0}
    warn = "catastrophic overfitting at epoch 9: guard PGD accuracy fell to 2.0% (best 41.0%); rolled back to epoch 8 and stopped"
    metas = {"adv-s0": {**base, "seed": 0, "warnings": [warn], "adversarial": {"label": "FGSM-RS (ε = 8/255)"}},
             "adv-s1": {**base, "seed": 1, "warnings": []}, "erm-s0": {**base, "seed": 0}}
    frame = models_table(SimpleNamespace(slots={"adv": ["adv-s0", "adv-s1"], "erm": ["erm-s0"]}, controls={}), metas)
    assert frame.loc[0, "Training warnings"] == f"seed 0: {warn}" and frame.loc[1, "Training warnings"] == ""
    assert frame.loc[0, "Method"] == "ERM + FGSM-RS (ε = 8/255)"
    quiet = models_table(SimpleNamespace(slots={"erm": ["erm-s0"]}, controls={}), metas)
    assert "Training warnings" not in quiet  # reports without a warning keep their columns
