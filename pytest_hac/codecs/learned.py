"""Learned codecs: the CompressAI zoo, ELIC and the embedded tiny codecs.

Every learned codec is a :class:`CompressAICodec` around a CompressAI
``CompressionModel``:

* ``compress``/``decompress`` run CompressAI's real rANS entropy coder and pack
  each image into one self-contained byte string (header included), so bits per
  pixel are measured from real bytes;
* ``approximate`` is the model's differentiable forward pass with straight-through
  rounding. CompressAI rounds hard in eval mode, whose gradient is zero almost
  everywhere: a white-box attack through it would silently be no attack at all.

Importing CompressAI costs seconds, so this module only registers names, quality
ranges and descriptions; CompressAI is imported when a codec is built.
"""
from __future__ import annotations

import re
import struct
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import HacError, WeightsNotFound
from ..io.checkpoints import EMBEDDED_WEIGHTS, hub_checkpoint_dir, load_state_dict
from .base import Codec, Encoded, check_images, pad_to_multiple

__all__ = [
    "CompressAICodec", "ELIC_CHECKPOINTS", "TINY_ARCHITECTURE", "ZOO_MODELS", "elic_filename",
    "load_elic", "load_tiny", "map_elic_reimplementation", "straight_through", "tiny_state_dict",
]

#: Hyperprior-type models code the hyper-latent at 1/64 of the image size.
DEFAULT_STRIDE = 64

#: Mean |approximate(x) - decoded(x)| (pixels in [0, 1]) a codec's forward pass keeps to.
#: Where the forward pass quantizes exactly as the coder does, the two differ only by
#: float round-off (a rounding that flips at .5 changes a few pixels, hence not 1e-6).
EXACT_FORWARD_TOLERANCE = 2e-3
#: Autoregressive context models (mbt2018, cheng2020) round ``y`` in their forward pass
#: but ``y - mean`` in the coder: the forward reconstruction is a looser approximation.
CONTEXT_FORWARD_TOLERANCE = 0.05


# --------------------------------------------------------------------------- straight-through rounding


class _RoundSTE(torch.autograd.Function):
    """``torch.round`` in the forward pass (bit-identical), identity in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # noqa: ARG004
        return torch.round(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # noqa: ARG004
        return grad


def round_ste(x: Tensor) -> Tensor:
    """Round with an identity gradient (the forward value is exactly ``torch.round(x)``)."""
    return _RoundSTE.apply(x)


def _ste_quantize(self: Any, inputs: Tensor, mode: str, means: Tensor | None = None) -> Tensor:
    # Same arithmetic as EntropyModel.quantize(mode="dequantize"), so the forward value is
    # bit-identical; only the gradient changes. "noise" and "symbols" stay CompressAI's.
    if mode != "dequantize":
        return type(self).quantize(self, inputs, mode, means)
    if means is None:
        return round_ste(inputs)
    return round_ste(inputs - means) + means


def _ste_checkerboard_quantize(self: Any, y: Tensor) -> Tensor:
    # CheckerboardLatentCodec.quantize calls EntropyModel.quantize unbound (only in its
    # "onepass" forward); give it the same straight-through rounding.
    if self.training:
        return y + torch.empty_like(y).uniform_(-0.5, 0.5)
    return round_ste(y)


def straight_through(net: nn.Module) -> nn.Module:
    """Make every eval-mode rounding of ``net`` straight-through (in place; returns ``net``).

    Overrides ``quantize`` on each ``EntropyModel`` instance (EntropyBottleneck,
    GaussianConditional and subclasses) and on checkerboard latent codecs, which
    covers the forward passes of every CompressAI image model (hyperprior,
    autoregressive, ELIC). ELIC's latent codecs already use STE; they are unaffected.
    """
    from compressai.entropy_models import EntropyModel
    from compressai.latent_codecs import CheckerboardLatentCodec

    for module in net.modules():
        if isinstance(module, EntropyModel):
            module.quantize = types.MethodType(_ste_quantize, module)
        elif isinstance(module, CheckerboardLatentCodec):
            module.quantize = types.MethodType(_ste_checkerboard_quantize, module)
    return net


# --------------------------------------------------------------------------- payload format
#
# One image = one byte string, as a file would be:
#   struct "<BHH": format version, image height, image width      (5 bytes)
#   varint count, then the latent shape numbers as varints           (e.g. 3 bytes)
#   varint count, then each entropy-coded string's length as varint
#   the strings, concatenated.
# Only the *numbers* of the latent shape are stored; their nesting (ELIC has one shape
# per channel group) is a property of the architecture, like a file format's syntax.

_FIXED = struct.Struct("<BHH")
_VERSION = 1


def _varint(n: int) -> bytes:
    # LEB128, as protobuf: numbers under 128 take one byte.
    if n < 0:
        raise HacError(f"cannot store negative number {n} in a codec payload")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise HacError("truncated codec payload (a header number runs past the end)")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _read_varint_list(buf: bytes, pos: int) -> tuple[list[int], int]:
    """A count, then that many numbers, as :func:`pack_payload` writes them."""
    count, pos = _read_varint(buf, pos)
    numbers = []
    for _ in range(count):
        n, pos = _read_varint(buf, pos)
        numbers.append(n)
    return numbers, pos


def pack_payload(height: int, width: int, shape_numbers: Sequence[int], strings: Sequence[bytes]) -> bytes:
    """One image's bitstream: a small header (image size, latent shape, string lengths) and the strings."""
    if not (0 < height < 65536 and 0 < width < 65536):
        raise HacError(f"image size {height}x{width} does not fit the payload header (max 65535)")
    parts = [_FIXED.pack(_VERSION, height, width), _varint(len(shape_numbers))]
    parts += [_varint(int(n)) for n in shape_numbers]
    parts.append(_varint(len(strings)))
    parts += [_varint(len(s)) for s in strings]
    parts += list(strings)
    return b"".join(parts)


def unpack_payload(payload: bytes) -> tuple[int, int, list[int], list[bytes]]:
    """Inverse of :func:`pack_payload`: (height, width, shape numbers, strings)."""
    if len(payload) < _FIXED.size:
        raise HacError(f"codec payload of {len(payload)} bytes is shorter than its header")
    version, height, width = _FIXED.unpack_from(payload)
    if version != _VERSION:
        raise HacError(f"codec payload has format version {version}; this build reads version {_VERSION}")
    numbers, pos = _read_varint_list(payload, _FIXED.size)
    lengths, pos = _read_varint_list(payload, pos)
    if pos + sum(lengths) != len(payload):
        raise HacError(f"corrupt codec payload: header announces {sum(lengths)} bytes of strings, "
                       f"{len(payload) - pos} follow")
    strings = []
    for n in lengths:
        strings.append(payload[pos:pos + n])
        pos += n
    return height, width, numbers, strings


def _flatten_shape(shape: Any) -> list[int]:
    """The numbers of a (nested) latent shape, in a fixed order."""
    if isinstance(shape, int):
        return [shape]
    if isinstance(shape, dict):
        return [n for key in sorted(shape) for n in _flatten_shape(shape[key])]
    return [n for item in shape for n in _flatten_shape(item)]


def _shape_template(shape: Any) -> Any:
    """The nesting of a latent shape with its numbers left out (None)."""
    if isinstance(shape, int):
        return None
    if isinstance(shape, dict):
        return {key: _shape_template(value) for key, value in shape.items()}
    return type(shape), [_shape_template(item) for item in shape]


def _fill_shape(template: Any, numbers: Iterable[int]) -> Any:
    it = iter(numbers)

    def fill(node: Any) -> Any:
        if node is None:
            return next(it)
        if isinstance(node, dict):
            return {key: fill(node[key]) for key in sorted(node)}
        kind, items = node
        return kind([fill(item) for item in items])

    return fill(template)


# --------------------------------------------------------------------------- the codec


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
            self._template = _shape_template(out["shape"])
        numbers = _flatten_shape(out["shape"])
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
        shape = _fill_shape(self.template(), numbers)
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

    def approximate(self, x: Tensor) -> Tensor:
        """The forward pass with straight-through rounding: differentiable, close to the decoded bitstream."""
        check_images(x)
        padded, (h, w) = pad_to_multiple(x.to(self.device, torch.float32), self.stride)
        x_hat = self.net(padded)["x_hat"]
        return x_hat[..., :h, :w].clamp(0, 1).to(x.device, x.dtype)


def default_forward_tolerance(net: nn.Module) -> float:
    """:data:`CONTEXT_FORWARD_TOLERANCE` for autoregressive context models, else the exact one."""
    from compressai.models import JointAutoregressiveHierarchicalPriors

    if isinstance(net, JointAutoregressiveHierarchicalPriors):
        return CONTEXT_FORWARD_TOLERANCE
    return EXACT_FORWARD_TOLERANCE


# --------------------------------------------------------------------------- the CompressAI zoo


@dataclass(frozen=True)
class ZooModel:
    """One CompressAI zoo image model: its zoo function, URL-table key and valid qualities."""

    function: str
    architecture: str
    qualities: tuple[int, ...]
    description: str


_Q8, _Q6 = tuple(range(1, 9)), tuple(range(1, 7))

#: Hard-coded so registering does not import CompressAI; a test checks them against compressai.zoo.
ZOO_MODELS: dict[str, ZooModel] = {
    "bmshj2018-factorized": ZooModel(
        "bmshj2018_factorized", "bmshj2018-factorized", _Q8,
        "CompressAI zoo: Balle et al. 2018 factorized prior (MSE)"),
    "bmshj2018-factorized-relu": ZooModel(
        "bmshj2018_factorized_relu", "bmshj2018-factorized", _Q8,
        "CompressAI zoo: factorized prior with ReLU; CompressAI 1.2.8 has no ReLU checkpoints and "
        "its loader returns the GDN factorized-prior weights (same as bmshj2018-factorized)"),
    "bmshj2018-hyperprior": ZooModel(
        "bmshj2018_hyperprior", "bmshj2018-hyperprior", _Q8,
        "CompressAI zoo: Balle et al. 2018 scale hyperprior (MSE)"),
    "mbt2018-mean": ZooModel(
        "mbt2018_mean", "mbt2018-mean", _Q8, "CompressAI zoo: Minnen et al. 2018 mean-scale hyperprior (MSE)"),
    "mbt2018": ZooModel(
        "mbt2018", "mbt2018", _Q8,
        "CompressAI zoo: Minnen et al. 2018 joint autoregressive + hyperprior (MSE; slow serial decoding)"),
    "cheng2020-anchor": ZooModel(
        "cheng2020_anchor", "cheng2020-anchor", _Q6, "CompressAI zoo: Cheng et al. 2020 anchor (MSE)"),
    "cheng2020-attn": ZooModel(
        "cheng2020_attn", "cheng2020-attn", _Q6, "CompressAI zoo: Cheng et al. 2020 with attention (MSE)"),
}


def zoo_checkpoint(name: str, quality: int) -> tuple[str, str]:
    """(file name, URL) of a zoo model's MSE checkpoint, from CompressAI's own URL table."""
    from compressai.zoo.image import model_urls

    url = model_urls[ZOO_MODELS[name].architecture]["mse"][quality]
    return url.rsplit("/", 1)[-1], url


def load_zoo(name: str, quality: int, *, weights_dir: Path | None = None, offline: bool = False) -> CompressAICodec:
    """A CompressAI zoo model at ``quality`` with its pretrained MSE weights.

    The same pipeline as ``compressai.zoo.<fn>(quality, metric="mse", pretrained=True)``
    (CompressAI's URL table, torch.hub's cache under ``TORCH_HOME``, CompressAI's key
    conversion and ``from_state_dict``), except that the file is loaded with
    ``weights_only=True`` and checked (CompressAI's loader unpickles it unchecked).
    ``weights_dir`` is searched first; with ``offline`` nothing is downloaded.
    """
    from compressai.zoo.image import model_architectures
    from compressai.zoo.pretrained import load_pretrained

    path = _zoo_file(name, quality, weights_dir, offline)
    state = load_pretrained(load_state_dict(path, what=f"CompressAI checkpoint for {name} quality {quality}"))
    arch = model_architectures[ZOO_MODELS[name].architecture]
    try:
        net = arch.from_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise WeightsNotFound(
            f"{path} does not fit CompressAI's {arch.__name__} ({type(exc).__name__}: {exc}); is it the "
            f"checkpoint for another model or quality? Delete it and download {zoo_checkpoint(name, quality)[1]}"
        ) from exc
    return CompressAICodec(net, name=name, quality=quality)


def _zoo_file(name: str, quality: int, weights_dir: Path | None, offline: bool) -> Path:
    filename, url = zoo_checkpoint(name, quality)
    if weights_dir is not None and (Path(weights_dir) / filename).is_file():
        return Path(weights_dir) / filename
    folder = hub_checkpoint_dir()
    path = folder / filename
    if path.is_file():
        return path
    where = f"{folder}" + (f" or {weights_dir}" if weights_dir is not None else "")
    fix = (f"download {url} and place it in {folder} (torch.hub's cache; set TORCH_HOME to move it) "
           f"or in the folder given with --hac-weights-dir")
    if offline:
        raise WeightsNotFound(
            f"CompressAI checkpoint {filename} ({name} quality {quality}) is not in {where}, and downloads are off "
            f"(--hac-offline): {fix}")
    return _download(url, path, name, quality, fix)


def _download(url: str, path: Path, name: str, quality: int, fix: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # CompressAI names its files <name>-<first 8 hex of sha256>: check it, so that an
    # error page saved under the checkpoint's name is caught here.
    match = torch.hub.HASH_REGEX.search(path.name)
    try:
        torch.hub.download_url_to_file(url, str(path), match.group(1) if match else None, progress=False)
    except Exception as exc:  # urllib, SSL, hash mismatch, disk: all mean "not there"
        raise WeightsNotFound(
            f"could not download CompressAI checkpoint {path.name} ({name} quality {quality}) from {url}: "
            f"{type(exc).__name__}: {exc}. Without network access, {fix}") from exc
    return path


def zoo_factory(name: str):
    def factory(quality: int, *, weights_dir: Path | None = None, offline: bool = False, **_: Any) -> CompressAICodec:
        return load_zoo(name, quality, weights_dir=weights_dir, offline=offline)

    factory.__name__ = f"zoo_{name.replace('-', '_')}"
    return factory


# --------------------------------------------------------------------------- ELIC

ELIC_REPO = "https://github.com/VincentChandelier/ELiC-ReImplemetation"
#: quality -> the lambda code of the re-implementation's public checkpoints (lambda 0.004 .. 0.45).
ELIC_CHECKPOINTS: dict[int, str] = {1: "0004", 2: "0008", 3: "0016", 4: "0032", 5: "0150", 6: "0450"}


def elic_filename(quality: int) -> str:
    """``ELIC_0004_ft_3980_Plateau.pth.tar`` .. ``ELIC_0450_ft_3980_Plateau.pth.tar`` for qualities 1..6."""
    return f"ELIC_{ELIC_CHECKPOINTS[quality]}_ft_3980_Plateau.pth.tar"


# The re-implementation's TestModel (Network.py) names its modules differently from
# CompressAI's Elic2022Chandelier, which was ported from it: same layers, new places.
_REIMPL_PREFIXES = ("cc_transforms.", "context_prediction.", "ParamAggregation.", "gaussian_conditional.")


def map_elic_reimplementation(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a VincentChandelier ELiC-ReImplemetation state dict to CompressAI's Elic2022Chandelier.

    ``h_a``/``h_s``/``entropy_bottleneck`` move under ``latent_codec.hyper``;
    ``cc_transforms.i`` becomes channel context ``y{i+1}``; ``context_prediction.i``
    and ``ParamAggregation.i`` become group ``y{i}``'s spatial context and entropy
    parameters; the single ``gaussian_conditional`` is copied into every group.
    """
    groups = sorted({int(k.split(".")[1]) for k in state if k.startswith("context_prediction.")})
    base = "latent_codec.y.latent_codec"
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in ("g_a", "g_s"):
            out[key] = value
        elif head in ("h_a", "h_s", "entropy_bottleneck"):
            out[f"latent_codec.hyper.{key}"] = value
        elif head == "gaussian_conditional":
            for k in groups:
                out[f"{base}.y{k}.y.gaussian_conditional.{rest}"] = value
        elif head in ("cc_transforms", "context_prediction", "ParamAggregation"):
            index, _, tail = rest.partition(".")
            i = int(index)
            if head == "cc_transforms":
                out[f"latent_codec.y.channel_context.y{i + 1}.{tail}"] = value
            elif head == "context_prediction":
                out[f"{base}.y{i}.context_prediction.{tail}"] = value
            else:
                out[f"{base}.y{i}.entropy_parameters.{tail}"] = value
        else:
            raise WeightsNotFound(f"unexpected key {key!r} in an ELIC re-implementation checkpoint")
    return out


def _is_reimplementation(state: dict[str, Tensor]) -> bool:
    return any(k.startswith(_REIMPL_PREFIXES) for k in state)


def _elic_dims(state: dict[str, Tensor], what: str) -> tuple[int, int, list[int]]:
    """N, M and channel groups of an ELIC state dict in CompressAI's layout."""
    try:
        n = state["g_a.0.weight"].shape[0]
        m = state["g_a.13.weight"].shape[0]
    except KeyError as exc:
        raise WeightsNotFound(f"{what} is not an ELIC checkpoint (no {exc.args[0]!r})") from exc
    pattern = re.compile(r"latent_codec\.y\.latent_codec\.y(\d+)\.context_prediction\.weight$")
    found = {int(mt.group(1)): v.shape[1] for k, v in state.items() if (mt := pattern.match(k))}
    groups = [found[k] for k in sorted(found)]
    if not groups or sum(groups) != m:
        raise WeightsNotFound(f"{what}: channel groups {groups} do not add up to M={m}")
    return n, m, groups


def load_elic(path: Path | str, *, official: bool = False) -> nn.Module:
    """An ELIC network from a CompressAI-style state dict or one of the re-implementation's checkpoints."""
    from compressai.models import Elic2022Chandelier, Elic2022Official
    from compressai.zoo.pretrained import rename_key

    what = f"ELIC checkpoint {path}"
    # rename_key strips DataParallel's "module." and converts CompressAI 1.1's entropy-bottleneck names.
    state = {rename_key(k): v for k, v in load_state_dict(path, what=what).items()}
    if _is_reimplementation(state):
        if official:
            raise WeightsNotFound(
                f"{what} is from the ELiC re-implementation ({ELIC_REPO}); load it as codec 'elic', "
                f"not 'elic-official' (the architectures differ)")
        state = map_elic_reimplementation(state)
    n, m, groups = _elic_dims(state, what)
    cls = Elic2022Official if official else Elic2022Chandelier
    net = cls(N=n, M=m, groups=groups)
    _load_strict(net, state, what)
    return net


def _load_strict(net: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """``load_state_dict`` that fills constant buffers a checkpoint may lack and names what does not fit."""
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


def elic_factory(official: bool):
    codec_name = "elic-official" if official else "elic"

    def factory(quality: int, *, weights_dir: Path | None = None, **_: Any) -> CompressAICodec:
        filename = elic_filename(quality)
        folder = Path(weights_dir) if weights_dir is not None else hub_checkpoint_dir()
        path = folder / filename
        if not path.is_file():
            where = "" if weights_dir is not None else " (the default folder; no --hac-weights-dir was given)"
            source = (f"the links in the README of {ELIC_REPO}" if not official
                      else "your own Elic2022Official training run (no official ELIC weights are public)")
            raise WeightsNotFound(
                f"{codec_name} quality {quality} needs checkpoint {filename} (lambda 0.{ELIC_CHECKPOINTS[quality]}) "
                f"in {folder}{where}. ELIC weights are never downloaded automatically: get {filename} from "
                f"{source} and pass its folder with --hac-weights-dir=<folder>")
        return CompressAICodec(load_elic(path, official=official), name=codec_name, quality=quality)

    return factory


# --------------------------------------------------------------------------- embedded tiny codecs

#: CompressAI's MeanScaleHyperprior (Minnen et al. 2018 without context model) at a size where
#: six models in float16 stay under 10 MB (about 1.5 MB each).
TINY_ARCHITECTURE: dict[str, int] = {"N": 40, "M": 64}
TINY_KINDS = ("tiny-mse", "tiny-hific")
TINY_QUALITIES = (1, 2, 3)
#: Entropy tables are rebuilt from the weights by update(); the files leave them out.
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


def tiny_path(kind: str, quality: int) -> Path:
    """``pytest_hac/weights/<kind>-q<quality>.pt``."""
    return EMBEDDED_WEIGHTS / f"{kind}-q{quality}.pt"


def build_tiny_net() -> nn.Module:
    """A fresh (random) tiny network: what ``scripts/train_tiny_codecs.py`` trains."""
    from compressai.models import MeanScaleHyperprior

    return MeanScaleHyperprior(**TINY_ARCHITECTURE)


def tiny_state_dict(net: nn.Module) -> dict[str, Tensor]:
    """What a tiny codec file holds: transform weights in float16 (halves the files), entropy-model
    parameters in float32 (medians and quantiles set the quantization grid), no entropy tables."""
    out = {}
    for key, value in net.state_dict().items():
        if key.rsplit(".", 1)[-1] in _TABLE_BUFFERS:
            continue
        if value.is_floating_point() and not key.startswith(("entropy_bottleneck.", "gaussian_conditional.")):
            value = value.half()
        out[key] = value.detach().clone().cpu()
    return out


def load_tiny(kind: str, quality: int, path: Path | None = None) -> nn.Module:
    """The embedded tiny network ``kind`` ("tiny-mse" or "tiny-hific") at ``quality`` 1..3."""
    path = path or tiny_path(kind, quality)
    net = build_tiny_net()
    what = f"embedded {kind} q{quality} weights (reinstall pytest-hac or rerun scripts/train_tiny_codecs.py)"
    state = load_state_dict(path, what=what)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    _load_strict(net, state, what)
    return net


def tiny_factory(kind: str):
    def factory(quality: int, **_: Any) -> CompressAICodec:
        return CompressAICodec(load_tiny(kind, quality), name=kind, quality=quality)

    return factory
