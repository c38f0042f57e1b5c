"""Fixtures of the pytester-driven plugin tests."""
import pytest

MYMODEL = """
import os
import torch
from pytest_hac.models import get_model


def build():
    model = get_model("efficientnet-lite0")
    if os.environ.get("DEGRADE"):
        # A planted regression: the model sees a heavily blurred image.
        inner = model.net
        blur = torch.nn.AvgPool2d(9, stride=1, padding=4)
        model.net = torch.nn.Sequential(blur, inner)
    return model
"""

ONE_CLEAN_CELL = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [75]}, threats=["clean"])
def test_clean(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
"""


@pytest.fixture
def project(suite, pytester):
    """A project with a user's model ``mymodel:build`` (EfficientNet-Lite0; blurred when ``DEGRADE`` is set)
    and one clean JPEG cell gated by its threshold (used by test_baselines.py and test_thresholds_files.py)."""
    p = suite(ONE_CLEAN_CELL)
    pytester.makepyfile(mymodel=MYMODEL)
    pytester.syspathinsert()
    return p
