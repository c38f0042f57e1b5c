"""Any CompressAI ``CompressionModel`` as a defense: :class:`CompressAICodec`.

Every CompressAI-based codec (the zoo, ELIC, the embedded tiny codecs) is one of these:

* ``compress``/``decompress`` run CompressAI's real rANS entropy coder and pack each
  image into one self-contained byte string (:func:`~.payload.pack_payload`, header
  included), so bits per pixel are measured from real bytes;
* ``approximate`` is the model's differentiable forward pass with straight-through
  rounding (:func:`~.ste.straight_through`).

CompressAI itself is imported only when a codec is built: importing it costs seconds.
"""
from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import HacError, WeightsNotFound
from .base import Codec, Encoded, check_images, pad_to_multiple, to_uint8
from .fastpath import symbols_only
from .payload import fill_shape, flatten_shape, pack_payload, shape_template, unpack_payload
from .ste import straight_through

__all__ = ["CONTEXT_FORWARD_TOLERANCE", "EXACT_FORWARD_TOLERANCE", "CompressAICodec", "load_state_strict"]

#: Hyperprior-type models code the hyper-latent at 1/64 of the image size.
DEFAULT_STRIDE = 64

#: Mean |approximate(x) - decoded(x)| (pixels in [0, 1]) a codec's forward pass keeps to.
#: Where the forward pass quantizes exactly as the coder does, the two differ only by
#: float round-off (a rounding that flips at .5 changes a few pixels, hence not 1e-6).
EXACT_FORWARD_TOLERANCE = 2e-3
#: Autoregressive context models (mbt2018, cheng2020) round ``y`` in their forward pass
#: but ``y - mean`` in the coder: the forward reconstruction is a looser approximation.
CONTEXT_FORWARD_TOLERANCE = 0.05


class CompressAICodec(Codec):
    """Any CompressAI ``CompressionModel`` as a defense: real bitstreams plus a differentiable twin.

    Args:
        net: the compression model (put in eval mode, frozen, made straight-through).
        name, quality: how reports label it.
        stride: inputs are padded to a multiple of this (default: the model's
            ``downsampling_factor``, else 64 as for every hyperprior model).
        forward_tolerance: mean absolute difference allowed between ``approximate``
            and the decoded bitstream (see :data:`EXACT_FORWARD_TOLERANCE`).
    """

    def __init__(self, net: nn.Module, *, name: str = "compressai", quality: int | None = None,
                 stride: int | None = None, forward_tolerance: float | None = None) -> None:
        super().__init__()
        self.name = name
        self.quality = quality
        self.net = straight_through(net.eval().requires_grad_(False))
        self.stride = int(stride or getattr(net, "downsampling_factor", DEFAULT_STRIDE))
        #: PITFALL: the forward pass and the decoded bitstream can differ (context models);
        #: evaluation always decodes the bitstream, attacks use the forward pass.
        self.forward_vs_decode_tolerance = (
            forward_tolerance if forward_tolerance is not None else default_forward_tolerance(net))
        self._updated = False
        self._template: Any = None
        self._serial_context = _codes_serially(net)

    def to(self, device: torch.device | str) -> "CompressAICodec":
        super().to(device)
        self.net.to(self.device)
        return self

    def _ensure_updated(self) -> None:
        # Entropy tables must match the weights (stale tables decode garbage); built once,
        # outside inference mode so that the buffers stay ordinary tensors.
        if not self._updated:
            with torch.inference_mode(False), torch.no_grad():
                self.net.update(force=True)
            self._updated = True

    def compress(self, x: Tensor) -> Encoded:
        check_images(x)
        h, w = x.shape[-2:]
        if not len(x):
            return Encoded([], h, w)
        self._ensure_updated()
        padded, _ = pad_to_multiple(x.to(self.device, torch.float32), self.stride)
        with torch.no_grad():
            out = self.net.compress(padded)
        if self._template is None:
            self._template = shape_template(out["shape"])
        numbers = flatten_shape(out["shape"])
        strings = out["strings"]
        payloads = [pack_payload(h, w, numbers, [s[i] for s in strings]) for i in range(x.shape[0])]
        return Encoded(payloads, h, w)

    def decompress(self, encoded: Encoded) -> Tensor:
        if not encoded.payloads:
            return torch.empty(0, 3, encoded.height, encoded.width, device=self.device)
        self._ensure_updated()
        parts = [unpack_payload(p) for p in encoded.payloads]
        heads = {(h, w, tuple(numbers), len(strings)) for h, w, numbers, strings in parts}
        if len(heads) != 1:
            raise HacError(f"{self.label}: a batch's payloads must share image and latent size; got {sorted(heads)}")
        h, w, numbers, n_strings = heads.pop()
        if (h, w) != (encoded.height, encoded.width):
            raise HacError(f"{self.label}: payloads hold {h}x{w} images, not {encoded.height}x{encoded.width}")
        shape = fill_shape(self.template(), numbers)
        strings = [[strings[k] for _, _, _, strings in parts] for k in range(n_strings)]
        with torch.no_grad():
            x_hat = self.net.decompress(strings, shape)["x_hat"]
        return x_hat[..., :h, :w].clamp(0, 1)

    def template(self) -> Any:
        """The nesting of this architecture's latent shape, learned by coding one blank stride-sized image."""
        if self._template is None:
            blank = torch.zeros(1, 3, self.stride, self.stride, device=self.device)
            self.compress(blank)
        return self._template

    def fast_decode(self, x: Tensor) -> Tensor | None:
        """``net.compress`` then ``net.decompress`` with the symbols handed over instead of rANS-coded.

        None for autoregressive context models: they drive rANS themselves, symbol by symbol, and
        their cost is the serial context loop, not the coder.
        """
        if self._serial_context:
            return None
        check_images(x)
        h, w = x.shape[-2:]
        self._ensure_updated()
        padded, _ = pad_to_multiple(x.to(self.device, torch.float32), self.stride)
        with torch.no_grad(), symbols_only(self.net):
            out = self.net.compress(padded)
            x_hat = self.net.decompress(out["strings"], out["shape"])["x_hat"]
        return to_uint8(x_hat[..., :h, :w].clamp(0, 1))

    def approximate(self, x: Tensor) -> Tensor:
        """The forward pass with straight-through rounding: differentiable, close to the decoded bitstream."""
        check_images(x)
        padded, (h, w) = pad_to_multiple(x.to(self.device, torch.float32), self.stride)
        x_hat = self.net(padded)["x_hat"]
        return x_hat[..., :h, :w].clamp(0, 1).to(x.device, x.dtype)


def _codes_serially(net: nn.Module) -> bool:
    """Whether ``net`` drives rANS itself (autoregressive context models): no symbol hand-over is possible."""
    from compressai.latent_codecs import RasterScanLatentCodec
    from compressai.models import JointAutoregressiveHierarchicalPriors

    return isinstance(net, JointAutoregressiveHierarchicalPriors) or any(
        isinstance(m, RasterScanLatentCodec) for m in net.modules())


def default_forward_tolerance(net: nn.Module) -> float:
    """:data:`CONTEXT_FORWARD_TOLERANCE` for autoregressive context models, else the exact one."""
    from compressai.models import JointAutoregressiveHierarchicalPriors

    if isinstance(net, JointAutoregressiveHierarchicalPriors):
        return CONTEXT_FORWARD_TOLERANCE
    return EXACT_FORWARD_TOLERANCE


# --------------------------------------------------------------------------- loading weights into a network


def load_state_strict(net: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """``load_state_dict`` that fills constant buffers a checkpoint may lack and names what does not fit.

    Used by the ELIC and tiny-codec loaders (the zoo goes through CompressAI's own ``from_state_dict``).
    """
    state = {_modern_eb_name(k): v for k, v in state.items()}
    own = net.state_dict()
    params = {name for name, _ in net.named_parameters()}
    missing = sorted(k for k in own if k not in state and k in params)
    unexpected = sorted(k for k in state if k not in own)
    if missing or unexpected:
        raise WeightsNotFound(
            f"{what} does not fit {type(net).__name__}: {len(missing)} weights missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    # Buffers are architecture constants (masks, bounds) or entropy tables rebuilt by update().
    for key, value in own.items():
        if key not in params:
            state.setdefault(key, value)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsNotFound(f"{what} does not fit {type(net).__name__}: {exc}") from exc


_OLD_EB = re.compile(r"(entropy_bottleneck)\._(matrix|matrices|bias|biases|factor|factors)\.?(\d+)$")
_EB_LISTS = {"matrix": "matrices", "bias": "biases", "factor": "factors"}
_EB_LISTS.update({v: v for v in list(_EB_LISTS.values())})


def _modern_eb_name(key: str) -> str:
    # Older CompressAI releases named the entropy bottleneck's parameters _matrix0 or
    # _matrices.0; 1.2 names them matrices.0.
    return _OLD_EB.sub(lambda m: f"{m.group(1)}.{_EB_LISTS[m.group(2)]}.{m.group(3)}", key)
