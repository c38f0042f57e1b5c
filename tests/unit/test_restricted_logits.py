"""The paper's Imagenette protocol: a model's logits restricted to the data's classes."""
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
