"""*Human Aligned Compression for Robust Models* (arXiv 2504.12255) as runnable gates.

The paper scale, collected for ``--hac-model=resnet50`` or ``vit`` (with ``--hac-data=.../imagenette2-320/val``,
on a GPU; every other model runs ``test_miniature.py``):
the main L-inf table (JPEG q25, ELIC 0016 = quality 3, HiFiC low = quality 1; FGSM, iFGSM, PGD at
2..12/255; black-box = ``oblivious``, white-box = ``whitebox``, plus ``adaptive``), the quality
ablations and the sequential-rounds experiments. Thresholds: ``hac_thresholds.toml`` beside this
file, each taken from the paper's tables (source named there) minus a margin. See docs/paper.md.
"""
import pytest

LINF_EPS = ["2/255", "4/255", "6/255", "8/255", "10/255", "12/255"]
PAPER_ATTACKS = ["fgsm", "ifgsm", "pgd"]  # 10 steps, alpha = eps/4 (the registry's defaults)


@pytest.mark.hac(codecs={"identity": [], "jpeg-kornia": [25], "elic": [3], "hific": [1]},
                 threats=["clean", "oblivious", "whitebox", "adaptive"], attack=PAPER_ATTACKS, eps=LINF_EPS)
def test_table_linf(hac_case, hac_evaluate):
    """Table T-A (Imagenette) / T-C (ImageNet-1000): main L-inf results."""
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)


@pytest.mark.hac(codecs={"jpeg-kornia": [5, 10, 15, 25, 35, 50, 75, 95], "elic": [1, 2, 3, 4, 5, 6],
                         "hific": [1, 2, 3]},
                 threats=["clean", "oblivious", "whitebox"], attack="ifgsm", eps=["2/255", "4/255", "8/255",
                                                                                  "12/255"])
def test_quality_ablation(hac_case, hac_evaluate):
    """Table T-D: quality ablations with iFGSM."""
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)


@pytest.mark.hac(codecs={"jpeg-kornia": [25], "elic": [6, 3], "hific": [1, 2]}, rounds=[1, 2, 3, 4, 5, 6, 7],
                 threats=["clean", "whitebox"], attack="ifgsm", eps=["4/255", "8/255", "12/255"])
def test_sequential_rounds(hac_case, hac_evaluate):
    """Table T-E: sequential compression, white-box iFGSM through all rounds."""
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
