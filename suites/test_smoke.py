"""The default robustness suite: JPEG qualities x rounds x threats on the chosen model.

On the embedded default (EfficientNet-Lite0, 20 ImageNet photos, CPU) it runs in a
few minutes. The gates are deliberately loose for 20 images: a cell fails only
when its whole 95% interval lies below the threshold (``--hac-gate=ci``).
Thresholds come from the embedded default with margin; see README "Gates".
"""
import pytest

# Clean accuracy through a defense must stay usable; under an attacker that ignores
# the defense (oblivious), JPEG must still save a clear share of images.
JPEG_GATES = {"clean": 0.60, "oblivious": 0.25}


@pytest.mark.hac(
    codecs={"jpeg": [25, 50, 75]},
    rounds=[1, 2],
    threats=["clean", "oblivious", "whitebox"],
    attack="pgd",
    eps="4/255",
    min_accuracy=JPEG_GATES,  # whitebox is measured and reported, not gated: JPEG is not meant to stop it
)
def test_jpeg_defense(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)


@pytest.mark.hac(codecs={"identity": []}, threats=["clean", "oblivious"], attack="pgd", eps="4/255",
                 min_accuracy={"clean": 0.60})
def test_undefended_reference(hac_case, hac_evaluate):
    """The bare model: clean accuracy gated, its (expected near-zero) attacked accuracy reported."""
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
