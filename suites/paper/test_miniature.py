"""*Human Aligned Compression for Robust Models* in miniature, collected for every model but the paper's (by
default the embedded EfficientNet-Lite0 on 20 photos, CPU): the structure of ``test_paper.py`` with the embedded
codecs ``tiny-mse`` (MSE-trained) and ``tiny-hific`` (GAN + perceptual, human-aligned) in place of ELIC and
HiFiC. Its report states whether each of the paper's findings holds; no thresholds are tuned to force them.
See docs/paper.md.
"""
import pytest


@pytest.mark.hac(codecs={"identity": [], "jpeg": [25, 50, 75], "tiny-mse": [1, 2, 3], "tiny-hific": [1, 2, 3]},
                 threats=["clean", "oblivious", "whitebox", "adaptive"], attack="pgd", eps=["4/255", "8/255"])
def test_miniature_linf(hac_case, hac_evaluate):
    """Learned vs JPEG at comparable bpp, under every threat."""
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)


@pytest.mark.hac(codecs={"jpeg": [2, 20, 60]}, threats=["clean", "oblivious"], attack="pgd", eps=["4/255", "8/255"])
def test_miniature_jpeg_at_the_learned_bpp(hac_case, hac_evaluate):
    """JPEG at the bpp of the embedded codecs' qualities 1, 2, 3 (about 0.27, 0.69, 1.3 bpp on these photos:
    pytest_hac/weights/CODECS.md), so 'learned vs JPEG at comparable bpp' compares like with like."""
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)


@pytest.mark.hac(codecs={"jpeg": [25], "tiny-mse": [2], "tiny-hific": [2]}, rounds=[1, 2, 3],
                 threats=["clean", "oblivious", "whitebox"], attack="ifgsm", eps="4/255")
def test_miniature_rounds(hac_case, hac_evaluate):
    """Sequential rounds, as in T-E."""
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
