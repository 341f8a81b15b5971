import pytest
import torch

from robustmix.config import TrainConfig
from robustmix.data import load_dataset
from robustmix.train import train

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def trained(digits):
    """A small ERM CNN trained on digits for a few epochs: (model, meta)."""
    return train(TrainConfig(epochs=4, seed=0), data=digits)


@pytest.fixture(scope="session")
def trained_mixup(digits):
    return train(TrainConfig(method="mixup", alpha=1.0, epochs=4, seed=1), data=digits)


@pytest.fixture()
def batch(digits):
    return digits.x_test[:96].clone(), digits.y_test[:96].clone()
