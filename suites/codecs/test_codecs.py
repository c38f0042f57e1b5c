"""The codecs images really pass through: JPEG, WebP, AVIF and JPEG 2000 at three comparable rates.

The qualities put each codec near JPEG q25, q50 and q75 on the embedded photos (about 0.8, 1.15 and 1.6
bits per pixel; the measured rates are in the report, and its "codecs at the same rate" section compares
them at common bpp). None of WebP, AVIF and JPEG 2000 has a differentiable stand-in, so their adaptive
cells are BPDA with the identity backward through the real encoder (one attack per defense); JPEG's
are kornia's differentiable JPEG and the identity, per image the worst. Every cell is measured, not gated:
which codec buys the most robustness per bit is the question, not a claim (README: "Codecs at the same
rate"). The oblivious attack is the smoke suite's, computed once per session.
"""
import pytest

#: Qualities near JPEG q25 / q50 / q75 in bpp on the embedded photos (each library's own quality scale).
RATES = {"jpeg": [25, 50, 75], "webp": [38, 65, 82], "avif": [52, 62, 73], "jpeg2000": [28, 29, 31]}


@pytest.mark.hac(codecs=RATES, threats=["clean", "oblivious", "adaptive"], attack="pgd", eps="4/255")
def test_codecs_at_comparable_rates(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
