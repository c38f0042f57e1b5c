"""A planted gradient-masking defense, end to end: the soundness checks flag it and fail its cell."""
import json

BROKEN_DEFENSE = """
import torch
from pytest_hac.codecs.jpeg import Jpeg


class MaskedJpeg(Jpeg):
    '''Real JPEG whose "differentiable" path is the real codec: zero gradient (gradient masking).'''

    name = "masked-jpeg"

    def approximate(self, x):
        real, _ = self.roundtrip(x.detach())
        return real.clone() + 0 * x


def pytest_hac_register(registry, config):
    registry.register_codec("masked-jpeg", lambda q, **_: MaskedJpeg(q), qualities=range(1, 101),
                            description="planted: JPEG attacked with raw (zero) gradients", replace=True)
"""

# tiny-cnn on digits (the soundness check is the subject, not the model): small images of simple digits resist
# 8/255, so the budget is 32/255, at which the oblivious attacker breaks them all.
CELLS = """
import pytest

@pytest.mark.hac(codecs={"masked-jpeg": [60], "jpeg": [60]}, threats=["clean", "oblivious", "whitebox"],
                 attack="pgd", eps="32/255", steps=5)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""


def test_planted_gradient_masking_is_flagged_and_fails_by_default(suite, pytester):
    p = suite(CELLS)
    pytester.makeconftest(BROKEN_DEFENSE)
    result = p.runpytest("--hac-model=tiny-cnn", "--hac-samples=8", "--hac-cache=cache")
    result.assert_outcomes(passed=5, failed=1)  # soundness findings fail the cells they implicate
    result.stdout.fnmatch_lines(["*masked-jpeg-q60-r1-whitebox-pgd-eps32-s5: soundness: informed-not-weaker:*"])
    data = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    acc = {r["case_id"]: r["accuracy"] for r in data["results"]}
    flagged = [f for f in data["meta"]["soundness"]["findings"] if f["check"] == "informed-not-weaker"]
    # The honest JPEG approximation lets the white-box attacker do at least as well as the oblivious one ...
    assert acc["jpeg-q60-r1-whitebox-pgd-eps32-s5"] <= acc["jpeg-q60-r1-oblivious-pgd-eps32-s5"]
    # ... the masked one does not, and the check says so.
    assert acc["masked-jpeg-q60-r1-whitebox-pgd-eps32-s5"] > acc["masked-jpeg-q60-r1-oblivious-pgd-eps32-s5"]
    assert [tuple(f["cells"]) for f in flagged] == [("masked-jpeg-q60-r1-whitebox-pgd-eps32-s5",
                                                     "masked-jpeg-q60-r1-oblivious-pgd-eps32-s5")]
    md = (p.path / "reports/tiny-cnn.md").read_text()
    assert "`informed-not-weaker`" in md and "**FLAGGED**" in md and "gradient masking" in md
    assert "soundness: informed-not-weaker" in md  # the failed cell's reason

    # the same run (from the cache: nothing is attacked again) only warns
    warned = p.runpytest("--hac-model=tiny-cnn", "--hac-samples=8", "--hac-cache=cache", "--hac-soundness=warn")
    warned.assert_outcomes(passed=6)
    assert "**FLAGGED**" in (p.path / "reports/tiny-cnn.md").read_text()
