"""The codec contract every defense implements, and what every codec shares: the 8-bit quantization of
decoded images, the input check and the padding to a stride."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import HacError


@dataclass(frozen=True)
class Encoded:
    """Bitstreams of a batch: one self-contained byte string per image plus the image size."""

    payloads: list[bytes]
    height: int
    width: int

    @property
    def nbytes(self) -> Tensor:
        return torch.tensor([len(p) for p in self.payloads], dtype=torch.float64)

    @property
    def bpp(self) -> Tensor:
        """Bits per pixel of each image, measured from the real bytes."""
        return self.nbytes * 8.0 / (self.height * self.width)


def to_uint8(x: Tensor) -> Tensor:
    """Quantize [0, 1] floats to 8 bits (as an image file would) and back to float."""
    return x.clamp(0, 1).mul(255).round().div(255)


def check_images(x: Tensor) -> None:
    """Codecs accept float NCHW RGB in [0, 1]; say so early instead of producing garbage."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise HacError(f"codecs take RGB batches shaped (N, 3, H, W); got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise HacError(f"codecs take float images in [0, 1]; got dtype {x.dtype} (divide uint8 images by 255)")


class Codec(ABC):
    """A lossy codec used as an input-purification defense.

    ``compress``/``decompress`` are the real thing (bytes on the wire); ``approximate``
    is a differentiable stand-in for white-box attacks. The two paths are kept
    separate on purpose: attacks may use ``approximate``, evaluation never does.
    """

    name: str = "codec"
    quality: int | None = None
    #: Inputs are padded to a multiple of this before coding and cropped back after.
    stride: int = 1
    #: Whether decoding involves randomness (then adaptive attacks use EOT).
    stochastic: bool = False
    #: Set by :func:`~.fastpath.verify_fast_path` (``get_codec`` runs it once per built codec):
    #: ``fast_decode`` equals ``roundtrip`` bit for bit, so attack queries may use it.
    fast_path: bool = False

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> "Codec":
        self.device = torch.device(device)
        return self

    @property
    def label(self) -> str:
        return self.name if self.quality is None else f"{self.name}-q{self.quality}"

    @abstractmethod
    def compress(self, x: Tensor) -> Encoded:
        """Encode a batch of images into one byte string per image."""

    @abstractmethod
    def decompress(self, encoded: Encoded) -> Tensor:
        """Decode bitstreams into float images in [0, 1], NCHW."""

    def roundtrip(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Compress and decompress; returns the 8-bit reconstruction and bits per pixel per image."""
        check_images(x)
        with torch.inference_mode():
            encoded = self.compress(x)
            x_hat = self.decompress(encoded)
        return to_uint8(x_hat).to(x.device), encoded.bpp

    def approximate(self, x: Tensor) -> Tensor:
        """Differentiable approximation of ``roundtrip`` for gradient-based attacks.

        The default is BPDA with the identity: the forward value is the real
        reconstruction, the gradient passes straight through.
        """
        with torch.no_grad():
            x_hat, _ = self.roundtrip(x.detach())
        return x + (x_hat - x).detach()

    def fast_decode(self, x: Tensor) -> Tensor | None:
        """The image ``roundtrip`` would return, computed without writing bytes, or None (no fast path).

        Override where the coder is lossless given the quantized latents (see :mod:`.fastpath`);
        it is used only once :func:`~.fastpath.verify_fast_path` found it bit-identical.
        """
        return None

    def attack_decode(self, x: Tensor) -> Tensor:
        """What an attacker querying the real defense sees: ``roundtrip``'s image, through the fast path if verified."""
        check_images(x)
        if self.fast_path:
            with torch.no_grad():
                return self.fast_decode(x).to(x.device)
        return self.roundtrip(x.detach())[0].clone()  # clone: leave inference mode's tensors behind

    def bpda(self, x: Tensor) -> Tensor:
        """BPDA: the decoded image forward, ``approximate``'s gradient backward.

        The forward is always a decode (the fast path where verified): ``approximate``'s own forward value
        rounds to the decoded image on some batches and thread counts but not on others, so it is never reused.
        """
        approx = self.approximate(x)
        real = self.attack_decode(x.detach())
        return approx + (real - approx).detach()


class Identity(Codec):
    """No defense: the image reaches the classifier untouched."""

    name = "identity"

    def compress(self, x: Tensor) -> Encoded:
        data = to_uint8(x).mul(255).to(torch.uint8).cpu()
        return Encoded([img.numpy().tobytes() for img in data], x.shape[-2], x.shape[-1])

    def decompress(self, encoded: Encoded) -> Tensor:
        import numpy as np

        h, w = encoded.height, encoded.width
        arrays = [np.frombuffer(p, dtype=np.uint8).reshape(3, h, w) for p in encoded.payloads]
        return torch.from_numpy(np.stack(arrays)).float().div(255).to(self.device)

    def roundtrip(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_images(x)
        return x, torch.full((x.shape[0],), float("nan"), dtype=torch.float64)

    def approximate(self, x: Tensor) -> Tensor:
        return x


def padded_side(n: int, multiple: int, minimum: int = 0) -> int:
    """``n`` rounded up to a multiple of ``multiple``, and at least ``minimum``."""
    return max(-(-n // multiple) * multiple, minimum)


def pad_to_multiple(x: Tensor, multiple: int, *, minimum: int = 0) -> tuple[Tensor, tuple[int, int]]:
    """Pad H and W at the bottom and right up to :func:`padded_side`; returns the padded batch and the original size.

    The one padding rule of every codec (JPEG's MCUs, CompressAI strides, HiFiC's image and latent):
    reflect where the input is larger than the padding, replicate where it is too small to reflect.
    """
    h, w = x.shape[-2:]
    ph, pw = padded_side(h, multiple, minimum) - h, padded_side(w, multiple, minimum) - w
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)
