"""The paper's Imagenette protocol: logits restricted to the data's classes."""
import torch

from pytest_hac.models import get_model, restrict


def test_restricted_logits_are_the_selected_columns():
    model = get_model("efficientnet-lite0")
    x = torch.rand(2, 3, 224, 224)
    classes = [0, 217, 482, 491, 497, 566, 569, 571, 574, 701]  # Imagenette's ImageNet indices
    sliced = restrict(model, classes)
    with torch.inference_mode():
        assert torch.equal(sliced(x), model(x)[:, classes])
    assert sliced.num_classes == 10 and sliced.label_space == "index"


def test_restrict_classes_option_end_to_end(suite):
    p = suite("""
import pytest

@pytest.mark.hac(codecs={"identity": []}, threats=["clean"])
def test_clean(hac_case, hac_evaluate, hac_model, hac_dataset):
    r = hac_evaluate(hac_case)
    assert hac_model.num_classes == 19  # 20 photos, two of class 609
    assert int(hac_dataset.labels.max()) < hac_model.num_classes
    assert r.accuracy >= 0.85  # a 19-way choice is no harder than the 1000-way one (0.85)
""")
    p.runpytest("--hac-restrict-classes").assert_outcomes(passed=1)
