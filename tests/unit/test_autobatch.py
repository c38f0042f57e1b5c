"""CPU ``--hac-batch-size=auto``: the model's batch from its activations, and the same results as batch 16."""
import pytest
import torch

from pytest_hac.attacks import make_spec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.engine.batches import CPU_CAP, CPU_FLOOR, activation_bytes, cpu_batch
from pytest_hac.core.engine.engine import Engine
from pytest_hac.data.builtin import digits
from pytest_hac.models import get_model


@pytest.fixture(scope="module")
def model():
    return get_model("tiny-cnn")


def test_the_batch_is_the_largest_power_of_two_that_fits(model):
    image = torch.rand(3, 32, 32)
    per_image = 3 * activation_bytes(model, image)
    assert cpu_batch(model, image, 10_000, 64 * per_image) == 64
    assert cpu_batch(model, image, 10_000, 100 * per_image) == 64
    assert cpu_batch(model, image, 10_000, 1 << 40) == CPU_CAP
    assert cpu_batch(model, image, 10_000, per_image) == CPU_FLOOR  # the former constant is the floor
    assert cpu_batch(model, image, 40, 1 << 40) == 40


def test_auto_gives_the_model_its_batch_and_codecs_16(model):
    engine = Engine(model, digits(samples=100))
    assert engine.batch_sizes == {"attack": 100, "codec": 16, "predict": 100}
    assert engine.chunk_size % 100 == 0 or engine.chunk_size == 100


@pytest.mark.parametrize("attack", [make_spec("pgd", "8/255", steps=3), make_spec("square", "8/255", steps=30)],
                         ids=["pgd", "square"])
def test_cells_at_auto_equal_cells_at_16(model, attack):
    data = digits(samples=40)
    case = Case("identity", None, 1, "oblivious", attack, id="cell")
    auto, fixed = (Engine(model, data, batch_size=b).evaluate(case) for b in ("auto", 16))
    assert auto.correct == fixed.correct
