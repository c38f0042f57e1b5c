"""HiFiC (Mentzer et al. 2020, "High-Fidelity Generative Image Compression") as a defense.

Why HiFiC is the paper's "human-aligned" codec: its decoder is a conditional GAN
generator trained with rate + MSE + LPIPS (perceptual) + adversarial losses. At low
rates it does not blur away what it cannot afford to transmit, it *synthesises*
plausible texture instead. That makes reconstructions look natural to people, and it
is also why clean accuracy can drop with no attack at all: the generator invents
detail the classifier may read differently.

This module holds the codec (:class:`HiFiC`) and its registry factory; the package splits
the rest by concern:

* :mod:`.model`: the networks, with the parameter names of the PyTorch port
  (github.com/Justin-Tan/high-fidelity-generative-compression);
* :mod:`.checkpoint`: the port's public checkpoints ``hific_low.pt`` / ``hific_med.pt`` /
  ``hific_hi.pt`` (the variants table), loaded safely from a local folder;
* :mod:`.coding`: the entropy models of CompressAI's rANS coder;
* the byte format of a payload is :func:`pytest_hac.codecs.payload.pack_hific_payload`.

``approximate`` is the port's differentiable forward with straight-through rounding.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import HacError
from ..base import Codec, Encoded, check_images, to_uint8
from ..fastpath import symbols_only
from ..payload import pack_hific_payload, unpack_hific_payload
from .checkpoint import VARIANTS, checkpoint_path, load_model
from .coding import build_entropy_models
from .model import HYPER_STRIDE, STRIDE, HiFiCModel, latent_shape

__all__ = ["VARIANTS", "HiFiC", "HiFiCModel", "hific_factory"]


class HiFiC(Codec):
    """HiFiC behind real rANS bitstreams; ``approximate`` is its straight-through forward pass.

    ``paper_input_quirk=True`` feeds [0, 1] images to checkpoints trained on [-1, 1]
    (the output mapping is kept), as the paper's wrapper did: only for reproducing it.
    """

    name = "hific"
    stride = STRIDE

    def __init__(self, model: HiFiCModel, quality: int | None = None, *, paper_input_quirk: bool = False,
                 settings_from: str = "constructor") -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.quality = quality
        self.paper_input_quirk = paper_input_quirk
        #: Where normalisation and likelihood came from ("checkpoint args" or the variant's defaults).
        self.settings_from = settings_from
        self._entropy_models: tuple[Any, Any] | None = None

    @classmethod
    def from_checkpoint(
        cls, path: Path | str, quality: int | None = None, *, paper_input_quirk: bool = False
    ) -> "HiFiC":
        """Load a port checkpoint; ``quality`` (1, 2, 3) picks the defaults used when it has no args."""
        model, where = load_model(path, quality)
        return cls(model, quality, paper_input_quirk=paper_input_quirk, settings_from=where)

    def to(self, device: torch.device | str) -> "HiFiC":
        super().to(device)
        self.model.to(self.device)
        return self

    def entropy_models(self) -> tuple[Any, Any]:
        """The (hyper-latent, latent) entropy models, built and ``update()``d once."""
        if self._entropy_models is None:
            self._entropy_models = build_entropy_models(self.model)
        return self._entropy_models

    def _normalize(self) -> bool:
        return self.model.normalize_input_image and not self.paper_input_quirk

    def _latent_params(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        mean, scale = self.model.Hyperprior.latent_params(z_hat.to(self.device))
        return mean.cpu(), scale.cpu()

    def compress(self, x: Tensor) -> Encoded:
        check_images(x)
        latent_hw, z_strings, y_strings = self._encode(x)
        payloads = [pack_hific_payload(latent_hw, zs, ys) for zs, ys in zip(z_strings, y_strings)]
        return Encoded(payloads, *x.shape[-2:])

    def _encode(self, x: Tensor) -> tuple[tuple[int, int], list, list]:
        bottleneck, conditional = self.entropy_models()
        with torch.no_grad():
            y = self.model.analysis(x.to(self.device), normalize=self._normalize())
            z = self.model.Hyperprior.analysis_net(y).cpu()
            z_strings = bottleneck.compress(z)
            # Predict from the decoded hyper-latents, exactly as the decoder will.
            z_hat = bottleneck.decompress(z_strings, z.shape[-2:])
            mean, scale = self._latent_params(z_hat)
            y_strings = conditional.compress(y.cpu(), conditional.build_indexes(scale), means=mean)
        return (y.shape[-2], y.shape[-1]), z_strings, y_strings

    def decompress(self, encoded: Encoded) -> Tensor:
        if not encoded.payloads:
            return torch.empty(0, 3, encoded.height, encoded.width, device=self.device)
        parts = [unpack_hific_payload(p) for p in encoded.payloads]
        expected = latent_shape(encoded.height, encoded.width)
        if any(shape != expected for shape, _, _ in parts):
            raise HacError(
                f"HiFiC payload latent shapes {sorted({p[0] for p in parts})} do not fit a "
                f"{encoded.height}x{encoded.width} image (expected {expected})"
            )
        return self._decode([p[1] for p in parts], [p[2] for p in parts], (encoded.height, encoded.width))

    def _decode(self, z_strings: list, y_strings: list, size: tuple[int, int]) -> Tensor:
        bottleneck, conditional = self.entropy_models()
        hz, wz = (side // HYPER_STRIDE for side in latent_shape(*size))
        with torch.no_grad():
            z_hat = bottleneck.decompress(z_strings, (hz, wz))
            mean, scale = self._latent_params(z_hat)
            y_hat = conditional.decompress(y_strings, conditional.build_indexes(scale), means=mean)
            return self.model.synthesis(y_hat.to(self.device), size)

    def fast_decode(self, x: Tensor) -> Tensor:
        """:meth:`_encode` then :meth:`_decode` with the symbols handed over instead of rANS-coded."""
        check_images(x)
        with symbols_only(*self.entropy_models()):
            _, z_strings, y_strings = self._encode(x)
            return to_uint8(self._decode(z_strings, y_strings, tuple(x.shape[-2:])))

    def approximate(self, x: Tensor) -> Tensor:
        check_images(x)
        return self.model(x.to(self.device), normalize=self._normalize()).to(x.device)


def hific_factory(quality: int, *, weights_dir: Path | None = None, **_: Any) -> HiFiC:
    """The registry factory of ``hific``: variant ``quality`` (1 low, 2 med, 3 hi) from ``weights_dir``."""
    return HiFiC.from_checkpoint(checkpoint_path(quality, weights_dir), quality)
