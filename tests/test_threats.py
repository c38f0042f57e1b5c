"""Threat models and the soundness checks that catch a weak evaluation."""
import json

import pytest

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

CELLS = """
import pytest

@pytest.mark.hac(codecs={"masked-jpeg": [60], "jpeg": [60]}, threats=["clean", "oblivious", "whitebox"],
                 attack="pgd", eps="8/255", steps=5)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""


def test_planted_gradient_masking_is_flagged(suite, pytester):
    p = suite(CELLS)
    pytester.makeconftest(BROKEN_DEFENSE)
    result = p.runpytest("--hac-samples=12")
    result.assert_outcomes(passed=6)
    data = json.loads((p.path / "reports/efficientnet-lite0.json").read_text())
    acc = {r["case_id"]: r["accuracy"] for r in data["results"]}
    flagged = [f for f in data["meta"]["soundness"] if f["check"] == "informed-not-weaker"]
    # The honest JPEG approximation lets the white-box attacker do at least as well as the oblivious one ...
    assert acc["jpeg-q60-r1-whitebox-pgd"] <= acc["jpeg-q60-r1-oblivious-pgd"]
    # ... the masked one does not, and the check says so.
    assert acc["masked-jpeg-q60-r1-whitebox-pgd"] > acc["masked-jpeg-q60-r1-oblivious-pgd"]
    assert [tuple(f["cells"]) for f in flagged] == [("masked-jpeg-q60-r1-whitebox-pgd",
                                                     "masked-jpeg-q60-r1-oblivious-pgd")]
    md = (p.path / "reports/efficientnet-lite0.md").read_text()
    assert "`informed-not-weaker`: **FLAGGED**" in md and "gradient masking" in md

    strict = p.runpytest("--hac-samples=12", "--hac-strict")
    strict.assert_outcomes(passed=5, failed=1)
    strict.stdout.fnmatch_lines(["soundness check informed-not-weaker: masked-jpeg-q60-r1-whitebox-pgd*"])


def test_soundness_checks_on_synthetic_results():
    from pytest_hac.result import Result
    from pytest_hac.soundness import check

    def r(case_id, threat, correct, eps=4 / 255, attack="pgd", codec="jpeg"):
        return Result.from_correct(correct, case_id=case_id, codec=codec, quality=50 if codec == "jpeg" else None,
                                   rounds=1, threat=threat, attack=None if threat == "clean" else attack,
                                   eps=None if threat == "clean" else eps, bpp=1.0, psnr=30.0, seconds=0.0)

    n = 40
    good, bad = [True] * n, [False] * n
    results = [
        r("c", "clean", good),
        r("o4", "oblivious", [True] * 10 + [False] * 30),
        r("o8", "oblivious", good, eps=8 / 255),  # more eps, more accuracy: not converging
        r("w4", "whitebox", good),  # informed attacker weaker: masking
        r("q4", "query", bad, attack="square"),  # gradient-free beats gradient: masking
        r("o0", "oblivious", [False] + good[1:], eps=0.0),  # eps 0 changed a prediction
        r("u8", "oblivious", good, eps=8 / 255, codec="identity"),  # undefended model survives large eps
    ]
    checks = {f.check for f in check(results)}
    assert checks == {"eps0-equals-clean", "monotone-in-eps", "informed-not-weaker", "gradient-free-not-stronger",
                      "undefended-breaks"}
    honest = [r("c", "clean", good), r("o4", "oblivious", [True] * 20 + [False] * 20),
              r("w4", "whitebox", [True] * 5 + [False] * 35)]
    assert check(honest) == []


def test_threat_aliases_from_the_paper():
    from pytest_hac.attacks import canonical_threat

    assert canonical_threat("black-box") == "oblivious"
    assert canonical_threat("White-Box") == "whitebox"
