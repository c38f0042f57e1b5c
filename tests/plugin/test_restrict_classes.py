"""--hac-restrict-classes end to end: the model's logits restricted to the classes of the data."""


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
