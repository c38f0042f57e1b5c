"""The embedded digit classifiers load safely, normalize inside and reach their model-card accuracy."""
import pytest
import torch

from pytest_hac.data import digits_split
from pytest_hac.errors import WeightsNotFound
from pytest_hac.models import get_model
from pytest_hac.zoo.tiny import load_tiny

# Held-out accuracy from MODEL_CARD.md (0.994 / 0.990) minus a margin.
FLOOR = {"tiny-cnn": 0.97, "tiny-vit": 0.96}


@pytest.mark.parametrize("name", ["tiny-cnn", "tiny-vit"])
def test_tiny_model_accuracy_and_contract(name):
    model = get_model(name)
    assert not model.training and model.num_classes == 10 and model.input_size == 32
    x, y = digits_split("test")
    with torch.inference_mode():
        logits = model(x)
        again = model(x)
    assert logits.shape == (len(y), 10) and logits.dtype == torch.float32
    assert torch.equal(logits, again)
    assert not torch.allclose(logits.softmax(-1).sum(-1), logits.sum(-1))  # logits, not probabilities
    assert (logits.argmax(1) == y).float().mean() >= FLOOR[name]
    assert {"mean", "std"} <= {k.rsplit(".", 1)[-1] for k in model.net.state_dict()}  # normalization inside


def test_train_and_test_splits_are_disjoint():
    xtr, _ = digits_split("train")
    xte, _ = digits_split("test")
    train = {t.numpy().tobytes() for t in xtr[:, 0]}
    assert sum(t.numpy().tobytes() in train for t in xte[:, 0]) <= 5  # a few digits are pixel-identical


def test_corrupt_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "tiny-cnn.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsNotFound, match="retrain with scripts/train_tiny_classifiers.py"):
        load_tiny("tiny-cnn", bad)
