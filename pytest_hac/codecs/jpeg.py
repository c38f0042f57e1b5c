"""JPEG through real libjpeg (PIL on CPU, nvJPEG through torchvision.io on CUDA)."""
from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .base import Codec, Encoded, pad_to_multiple, to_uint8


class Jpeg(Codec):
    """Baseline JPEG with 4:2:0 chroma subsampling at ``quality`` 1..100.

    ``approximate`` is kornia's differentiable JPEG (Reich et al. 2024), the
    surrogate the paper attacked through; evaluation always decodes real bytes.
    """

    name = "jpeg"
    stride = 16  # 4:2:0 MCUs; kornia's differentiable JPEG needs multiples of 16

    def __init__(self, quality: int) -> None:
        super().__init__()
        self.quality = int(quality)

    def compress(self, x: Tensor) -> Encoded:
        h, w = x.shape[-2:]
        pixels = to_uint8(x).mul(255).to(torch.uint8)
        if self.device.type == "cuda" and x.is_cuda:
            return Encoded(nvjpeg_encode(pixels, self.quality), h, w)
        payloads = []
        for img in pixels.permute(0, 2, 3, 1).cpu().numpy():
            buf = io.BytesIO()
            Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=self.quality, subsampling="4:2:0")
            payloads.append(buf.getvalue())
        return Encoded(payloads, h, w)

    def decompress(self, encoded: Encoded) -> Tensor:
        if self.device.type == "cuda":
            return nvjpeg_decode(encoded.payloads, self.device)
        # The JPEG decoder on the payload itself: Image.open would parse every header in Python first, as much
        # time as the decoding at 32 px (the same pixels, tested).
        size = (encoded.width, encoded.height)
        arrays = [np.asarray(Image.frombytes("RGB", size, p, "jpeg", "RGB", "")) for p in encoded.payloads]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255).to(self.device)

    def approximate(self, x: Tensor) -> Tensor:
        from kornia.enhance import jpeg_codec_differentiable

        padded, (h, w) = pad_to_multiple(x, self.stride)
        q = torch.full((x.shape[0],), float(self.quality), device=x.device, dtype=x.dtype)
        return jpeg_codec_differentiable(padded, q)[..., :h, :w].clamp(0, 1)


@contextmanager
def _quiet_torchvision() -> Iterator[None]:
    # torchvision 0.29 deprecates its image codecs in favour of TorchCodec and warns on every call: a warning the
    # plugin's users cannot act on (moving is ours to do), repeated for every batch of a GPU run.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The image decoding and encoding capabilities of TorchVision",
                                DeprecationWarning)
        yield


def nvjpeg_encode(pixels: Tensor, quality: int) -> list[bytes]:
    """uint8 NCHW images to JPEG files through ``torchvision.io`` (nvJPEG for CUDA tensors, libjpeg on CPU)."""
    from torchvision.io import encode_jpeg

    with _quiet_torchvision():
        return [bytes(t.cpu().numpy()) for t in encode_jpeg(list(pixels), quality=quality)]


def nvjpeg_decode(payloads: Sequence[bytes], device: torch.device | str) -> Tensor:
    """JPEG files to float [0, 1] NCHW on ``device`` through ``torchvision.io`` (nvJPEG on CUDA)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(p), dtype=torch.uint8) for p in payloads]
    with _quiet_torchvision():
        imgs = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    return torch.stack(imgs).float().div(255)


class KorniaJpeg(Jpeg):
    """kornia's differentiable JPEG as the defense itself, as the paper evaluated it.

    The reconstruction is kornia's; the bytes are those libjpeg writes at the
    same quality (kornia produces no bitstream), so bpp stays a real file size.
    """

    name = "jpeg-kornia"

    def roundtrip(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.inference_mode():
            bpp = self.compress(x).bpp
            x_hat = self.approximate(x)
        return to_uint8(x_hat), bpp
