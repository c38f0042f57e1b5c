"""*Human Aligned Compression for Robust Models* (arXiv 2504.12255) as runnable gates.

Paper scale (``--hac-model=resnet50`` or ``vit`` with ``--hac-data=.../imagenette2-320/val``, GPU):
the main L-inf table (JPEG q25, ELIC 0016 = quality 3, HiFiC low = quality 1; FGSM, iFGSM, PGD at
2..12/255; black-box = ``oblivious``, white-box = ``whitebox``, plus ``adaptive``), the quality
ablations and the sequential-rounds experiments. Thresholds: ``hac_thresholds.toml`` beside this
file, each taken from the paper's tables (source named there) minus a margin.

Miniature (every other model, by default the embedded EfficientNet-Lite0 on 20 photos, CPU): the same
structure with the embedded codecs ``tiny-mse`` (MSE-trained) and ``tiny-hific`` (GAN + perceptual,
human-aligned) in place of ELIC and HiFiC. Its report states whether each of the paper's findings
holds; no thresholds are tuned to force them. See docs/paper.md.
"""
import pytest

LINF_EPS = ["2/255", "4/255", "6/255", "8/255", "10/255", "12/255"]
PAPER_ATTACKS = ["fgsm", "ifgsm", "pgd"]  # 10 steps, alpha = eps/4 (the registry's defaults)

def check(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)


# --- paper scale ------------------------------------------------------------------------------------


@pytest.mark.paper_scale(True)
@pytest.mark.hac(codecs={"identity": [], "jpeg-kornia": [25], "elic": [3], "hific": [1]},
                 threats=["clean", "oblivious", "whitebox", "adaptive"], attack=PAPER_ATTACKS, eps=LINF_EPS)
def test_table_linf(hac_case, hac_evaluate):
    """Table T-A (Imagenette) / T-C (ImageNet-1000): main L-inf results."""
    check(hac_case, hac_evaluate)


@pytest.mark.paper_scale(True)
@pytest.mark.hac(codecs={"jpeg-kornia": [5, 10, 15, 25, 35, 50, 75, 95], "elic": [1, 2, 3, 4, 5, 6],
                         "hific": [1, 2, 3]},
                 threats=["clean", "oblivious", "whitebox"], attack="ifgsm", eps=["2/255", "4/255", "8/255",
                                                                                  "12/255"])
def test_quality_ablation(hac_case, hac_evaluate):
    """Table T-D: quality ablations with iFGSM."""
    check(hac_case, hac_evaluate)


@pytest.mark.paper_scale(True)
@pytest.mark.hac(codecs={"jpeg-kornia": [25], "elic": [6, 3], "hific": [1, 2]}, rounds=[1, 2, 3, 4, 5, 6, 7],
                 threats=["clean", "whitebox"], attack="ifgsm", eps=["4/255", "8/255", "12/255"])
def test_sequential_rounds(hac_case, hac_evaluate):
    """Table T-E: sequential compression, white-box iFGSM through all rounds."""
    check(hac_case, hac_evaluate)


# --- miniature on the embedded default --------------------------------------------------------------


@pytest.mark.paper_scale(False)
@pytest.mark.hac(codecs={"identity": [], "jpeg": [25, 50, 75], "tiny-mse": [1, 2, 3], "tiny-hific": [1, 2, 3]},
                 threats=["clean", "oblivious", "whitebox", "adaptive"], attack="pgd", eps=["4/255", "8/255"])
def test_miniature_linf(hac_case, hac_evaluate):
    """Learned vs JPEG at comparable bpp, under every threat."""
    check(hac_case, hac_evaluate)


@pytest.mark.paper_scale(False)
@pytest.mark.hac(codecs={"jpeg": [2, 20, 60]}, threats=["clean", "oblivious"], attack="pgd", eps=["4/255", "8/255"])
def test_miniature_jpeg_at_the_learned_bpp(hac_case, hac_evaluate):
    """JPEG at the bpp of the embedded codecs' qualities 1, 2, 3 (about 0.27, 0.69, 1.3 bpp on these photos:
    pytest_hac/weights/CODECS.md), so 'learned vs JPEG at comparable bpp' compares like with like."""
    check(hac_case, hac_evaluate)


@pytest.mark.paper_scale(False)
@pytest.mark.hac(codecs={"jpeg": [25], "tiny-mse": [2], "tiny-hific": [2]}, rounds=[1, 2, 3],
                 threats=["clean", "oblivious", "whitebox"], attack="ifgsm", eps="4/255")
def test_miniature_rounds(hac_case, hac_evaluate):
    """Sequential rounds, as in T-E."""
    check(hac_case, hac_evaluate)
