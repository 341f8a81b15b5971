import json

import pytest
import torch

from robustmix import load_checkpoint, save_checkpoint
from robustmix.training.config import TrainConfig
from robustmix.runtime.errors import RobustmixError
from robustmix.training.loop import train


def test_same_seed_gives_bit_identical_weights(digits):
    cfg = TrainConfig(method="mixup", epochs=2, seed=5)
    a, _ = train(cfg, data=digits)
    b, _ = train(cfg, data=digits)
    c, _ = train(cfg.with_(seed=6), data=digits)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_metadata_records_how_the_model_was_made(trained):
    _, meta = trained
    for key in ("model", "dataset", "num_classes", "input_shape", "method", "alpha", "seed", "epochs",
                "clean_top1_err", "robustmix_version", "role", "config"):
        assert key in meta
    assert meta["config"]["seed"] == meta["seed"] == 0
    assert meta["num_classes"] == 10 and meta["input_shape"] == [1, 8, 8]
    assert meta["clean_top1_err"] < 20


def test_save_load_round_trip_gives_equal_logits(trained, digits, tmp_path):
    model, meta = trained
    save_checkpoint(tmp_path / "ck", model, meta)
    loaded, meta2 = load_checkpoint(tmp_path / "ck")
    x = digits.x_test[:50]
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert meta2["seed"] == meta["seed"] and "weights_sha256" in meta2
    assert json.loads((tmp_path / "ck" / "meta.json").read_text())["method"] == "erm"


def test_tampered_weights_are_refused(trained, tmp_path):
    model, meta = trained
    save_checkpoint(tmp_path / "ck", model, meta)
    w = tmp_path / "ck" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(RobustmixError, match="model.safetensors"):
        load_checkpoint(tmp_path / "ck")


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(RobustmixError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")


@pytest.mark.parametrize(
    "change, words",
    [({"epochs": 0}, "epochs must be >= 1"), ({"lr": 0.0}, "lr must be a positive number"),
     ({"schedule": "linear"}, "schedule must be one of"), ({"method": "magic"}, "unknown method 'magic'")],
)
def test_config_validates_itself_with_flag_neutral_messages(change, words):
    # the same message serves the CLI (--epochs) and a bench spec (epochs = ...)
    with pytest.raises(RobustmixError) as e:
        TrainConfig(**change).validate()
    assert words in str(e.value) and "--" not in str(e.value)


def test_metadata_is_built_by_the_checkpoint_module(trained, digits):
    from robustmix.training.meta import checkpoint_meta

    _, meta = trained
    config = TrainConfig.from_dict(meta["config"])
    again = checkpoint_meta(config, digits, data_info=meta["data"], augment=meta["augment"],
                            clean_errors=(meta["clean_top1_err"], meta["clean_top5_err"]), history=meta["history"],
                            resumed_at_epoch=0, device=meta["device"], world_size=1)
    assert again == meta
