"""Planted broken codecs: each lies about itself in one way a soundness check must catch.

The regression suite of the soundness checks (tests/soundness/). Every codec's real path is libjpeg, so
its numbers are JPEG's; what is broken is what an attacker or the engine is told:

* ``flip-jpeg``: the stand-in's forward is exactly the decoded image, its backward flips the sign of each
  pixel's gradient at random (a masked gradient the identity-backward path hides in the adaptive cell);
* ``noisy-jpeg``: the same, with the gradient drowned in noise a hundred times its size;
* ``sparse-jpeg``: the same, with the gradient zero on a fixed 90% of the pixels;
* ``blur-jpeg``: the stand-in is a Gaussian blur, another function (real path JPEG q10 by default);
* ``random-quality-jpeg``: says it is deterministic, draws a quality per call (Python's ``random``);
* ``seeded-noise-jpeg``: says it is deterministic, adds noise from torch's global generator before coding
  (reproducible under the engine's per-batch seeds, so it would differ between batch sizes, xdist, shards);
* ``batch-jpeg`` (none of the issue's items names it): deterministic, but an image's coding depends on the
  other images of its batch (the quality follows the batch's mean brightness).

``register(registry)`` registers all of them; a test project's conftest calls it from ``pytest_hac_register``.
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import Tensor

from pytest_hac.codecs.jpeg import Jpeg


class _Backward(torch.autograd.Function):
    """The identity forward; ``how`` changes the gradient backward."""

    @staticmethod
    def forward(ctx, x: Tensor, how: str) -> Tensor:
        ctx.how = how
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g: Tensor):
        if ctx.how == "flip":
            g = g * (torch.randint(0, 2, g.shape, device=g.device) * 2 - 1)
        elif ctx.how == "noise":
            g = g + torch.randn_like(g) * 100 * g.abs().mean()
        elif ctx.how == "sparse":
            keep = torch.rand(g.shape[-2:], generator=torch.Generator().manual_seed(0)) < 0.1
            g = g * keep.to(g.device)
        return g, None


class MaskedBackwardJpeg(Jpeg):
    """Real JPEG whose stand-in's forward is the decoded image and whose backward is broken (``how``)."""

    how = "flip"

    def approximate(self, x: Tensor) -> Tensor:
        real = self.roundtrip(x.detach())[0].clone()
        passed = _Backward.apply(x, self.how)
        return passed + (real - passed).detach()


class BlurStandIn(Jpeg):
    """Real JPEG whose stand-in is a 5x5 Gaussian blur (sigma 1): another function."""

    def approximate(self, x: Tensor) -> Tensor:
        k = torch.exp(-torch.arange(-2.0, 3.0).pow(2) / 2)
        k = (k[:, None] * k[None]) / k.sum() ** 2
        padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
        return F.conv2d(padded, k.to(x).expand(3, 1, 5, 5), groups=3)


class RandomQualityJpeg(Jpeg):
    """Says it is deterministic (``stochastic = False``); codes each call at a random quality near its own."""

    def compress(self, x: Tensor):
        q = self.quality
        self.quality = max(1, min(100, q + random.randint(-20, 20)))
        try:
            return super().compress(x)
        finally:
            self.quality = q


class SeededNoiseJpeg(Jpeg):
    """Says it is deterministic; adds noise from torch's global generator before coding."""

    def compress(self, x: Tensor):
        return super().compress((x + 0.03 * torch.randn_like(x)).clamp(0, 1))


class BatchJpeg(Jpeg):
    """Deterministic, but each image's quality follows the mean brightness of its whole batch."""

    def compress(self, x: Tensor):
        q = self.quality
        self.quality = max(1, min(100, int(q * (0.5 + float(x.mean())))))
        try:
            return super().compress(x)
        finally:
            self.quality = q


def _masked(how: str) -> type:
    return type(f"{how.title()}Jpeg", (MaskedBackwardJpeg,), {"how": how})


PLANTED = {
    "flip-jpeg": (_masked("flip"), "its stand-in's backward flips each pixel's gradient sign at random"),
    "noisy-jpeg": (_masked("noise"), "its stand-in's gradient is drowned in noise"),
    "sparse-jpeg": (_masked("sparse"), "its stand-in's gradient is zero on a fixed 90% of pixels"),
    "blur-jpeg": (BlurStandIn, "its stand-in is a Gaussian blur"),
    "random-quality-jpeg": (RandomQualityJpeg, "says deterministic, draws a quality per call"),
    "seeded-noise-jpeg": (SeededNoiseJpeg, "says deterministic, adds noise from torch's generator"),
    "batch-jpeg": (BatchJpeg, "codes each image by its batch's brightness"),
}


def register(registry) -> None:
    """Register every planted codec (qualities 1..100, each named for what it breaks)."""
    for name, (cls, what) in PLANTED.items():
        def factory(q, cls=cls, name=name, **_):
            codec = cls(q)
            codec.name = name
            return codec

        registry.register_codec(name, factory, qualities=range(1, 101), description=f"planted: {what}", replace=True)
