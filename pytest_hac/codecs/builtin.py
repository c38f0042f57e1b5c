"""The built-in codecs, registered through the same door users take.

The registry imports this module on first use (``CODECS``'s ``builtins``). It is the one place
that registers codecs (no codec module registers itself), and it imports only torch-level
modules of this package, never CompressAI (a learned codec imports it when built).
"""
from __future__ import annotations

from ..registry import register_codec
from .base import Identity
from .compressai_zoo import ZOO_MODELS, zoo_factory
from .elic import ELIC_CHECKPOINTS, elic_factory
from .hific import VARIANTS, hific_factory
from .jpeg import Jpeg, KorniaJpeg
from .pillow_codecs import FORMATS, pillow_factory
from .tiny import TINY_QUALITIES, tiny_factory

register_codec("identity", lambda q, **_: Identity(), description="no defense (the bare model)", aliases=("none",))
register_codec("jpeg", lambda q, **_: Jpeg(q), qualities=range(1, 101), description="real libjpeg via PIL / nvJPEG")
register_codec(
    "jpeg-kornia", lambda q, **_: KorniaJpeg(q), qualities=range(1, 101),
    description="kornia's differentiable JPEG, as the paper evaluated; bpp from libjpeg",
)
for _name, _model in ZOO_MODELS.items():
    register_codec(_name, zoo_factory(_name), qualities=_model.qualities, description=_model.description)

register_codec(
    "elic", elic_factory(official=False), qualities=tuple(ELIC_CHECKPOINTS),
    description="ELIC (He et al. 2022) as re-implemented by VincentChandelier, the paper's codec; CompressAI "
                "Elic2022Chandelier; qualities 1..6 = lambda 0.004..0.45, weights from --hac-weights-dir")
register_codec(
    "elic-official", elic_factory(official=True), qualities=tuple(ELIC_CHECKPOINTS),
    description="ELIC with the paper's full channel context (CompressAI Elic2022Official); your own "
                "CompressAI checkpoints ELIC_<lambda>_ft_3980_Plateau.pth.tar from --hac-weights-dir")
register_codec(
    "tiny-mse", tiny_factory("tiny-mse"), qualities=TINY_QUALITIES,
    description="embedded tiny mean-scale hyperprior trained for rate + MSE (see weights/CODECS.md; offline)")
register_codec(
    "tiny-hific", tiny_factory("tiny-hific"), qualities=TINY_QUALITIES,
    description="embedded tiny codec trained HiFiC-style: rate + MSE + perceptual + GAN (see weights/CODECS.md)")
register_codec(
    "hific", hific_factory, qualities=tuple(VARIANTS),
    description="HiFiC GAN codec, Justin-Tan's port checkpoints low/med/hi ~ 0.14/0.30/0.45 bpp (--hac-weights-dir)",
)
for _name, _format in FORMATS.items():
    register_codec(_name, pillow_factory(_name), qualities=_format.qualities, description=_format.description,
                   stand_in=False)
