"""HiFiC (Mentzer et al. 2020, "High-Fidelity Generative Image Compression") as a defense.

Why HiFiC is the paper's "human-aligned" codec: its decoder is a conditional GAN
generator trained with rate + MSE + LPIPS (perceptual) + adversarial losses. At low
rates it does not blur away what it cannot afford to transmit, it *synthesises*
plausible texture instead. That makes reconstructions look natural to people, and it
is also why clean accuracy can drop with no attack at all: the generator invents
detail the classifier may read differently.

The architecture is written here, with the parameter names of the widely used
PyTorch port (github.com/Justin-Tan/high-fidelity-generative-compression:
``src/network/encoder.py``, ``generator.py``, ``hyper.py``, ``src/hyperprior.py``,
``src/compression/hyperprior_model.py``, ``src/normalisation/channel.py``), so that
its public checkpoints ``hific_low.pt`` / ``hific_med.pt`` / ``hific_hi.pt`` load
from a local folder:

* ``Encoder``: 7x7 conv then four stride-2 3x3 convs (60..960 channels, ChannelNorm,
  ReLU) to C=220 latent channels at 1/16 resolution;
* ``Hyperprior``: hyper-analysis (``analysis_net``), two hyper-syntheses for the
  mean and scale of each latent (``synthesis_mu``, ``synthesis_std``) and a
  factorized density for the hyper-latents (``hyperlatent_likelihood``);
* ``Generator``: ChannelNorm + conv head, residual blocks (9 in the checkpoints),
  four transposed convs back to full resolution and a 7x7 output conv.

Real bitstreams come from CompressAI's rANS coder (imported lazily: it costs
seconds): the hyper-latents through an ``EntropyBottleneck`` driven by the port's
density, the latents through a ``GaussianConditional`` (or its logistic twin for
``hific_med``) around the predicted means. ``approximate`` is the port's
differentiable forward with straight-through rounding.
"""
from __future__ import annotations

import argparse
import copy
import functools
import math
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import HacError, WeightsNotFound
from ..io.checkpoints import check_checkpoint_file, hub_checkpoint_dir
from .base import Codec, Encoded, check_images

PORT_URL = "https://github.com/Justin-Tan/high-fidelity-generative-compression"

ENCODER_WIDTHS = (60, 120, 240, 480, 960)
LATENT_CHANNELS = 220
HYPERLATENT_FILTERS = 320
N_RESIDUAL_BLOCKS = 9
DENSITY_FILTERS = (3, 3, 3)
SCALE_BOUND = 0.11  # the port's MIN_SCALE: latent scales are lower-bounded to this
TAIL_MASS = 1e-9  # probability mass left to the escape code outside the rANS tables
STRIDE = 16  # image -> latent
HYPER_STRIDE = 4  # latent -> hyper-latent
MIN_LATENT = 8  # smallest latent side the hyper-encoder accepts
MIN_IMAGE = 32  # smallest (padded) image side the encoder accepts


@dataclass(frozen=True)
class Variant:
    """One public checkpoint and the settings it was trained with (the port's README)."""

    name: str
    filename: str
    target_bpp: float
    #: Trained with ``-norm``: inputs in [-1, 1], generator output through tanh.
    normalize_input: bool
    likelihood: str
    drive_id: str

    @property
    def url(self) -> str:
        return f"https://drive.google.com/open?id={self.drive_id}"


VARIANTS: dict[int, Variant] = {
    1: Variant("low", "hific_low.pt", 0.14, True, "gaussian", "1hfFTkZbs_VOBmXQ-M4bYEPejrD76lAY9"),
    2: Variant("med", "hific_med.pt", 0.30, False, "logistic", "1QNoX0AGKTBkthMJGPfQI0dT0_tnysYUb"),
    3: Variant("hi", "hific_hi.pt", 0.45, True, "gaussian", "1BFYpvhVIA_Ek2QsHBbKnaBE8wn1GhFyA"),
}


# --------------------------------------------------------------------------- networks


class ChannelNorm2d(nn.Module):
    """Normalises every pixel across channels (not across space), with a learned affine map."""

    def __init__(self, channels: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True)  # unbiased, as the checkpoints were trained
        return self.gamma * (x - mean) * torch.rsqrt(var + self.eps) + self.beta


class Encoder(nn.Module):
    """Image (N, 3, H, W) -> latent (N, C, H/16, W/16)."""

    n_downsampling_layers = 4

    def __init__(self, latent_channels: int = LATENT_CHANNELS, widths: tuple[int, ...] = ENCODER_WIDTHS) -> None:
        super().__init__()
        # Sequential indices (pad, conv, norm, act) are the checkpoint's key names: keep them.
        self.conv_block1 = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, widths[0], 7), ChannelNorm2d(widths[0]), nn.ReLU()
        )
        for i in range(1, 5):
            block = nn.Sequential(
                nn.ReflectionPad2d((0, 1, 1, 0)),  # the port's asymmetric pad before each stride-2 conv
                nn.Conv2d(widths[i - 1], widths[i], 3, stride=2),
                ChannelNorm2d(widths[i]),
                nn.ReLU(),
            )
            self.add_module(f"conv_block{i + 1}", block)
        self.conv_block_out = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(widths[4], latent_channels, 3))

    def forward(self, x: Tensor) -> Tensor:
        for i in range(1, 6):
            x = getattr(self, f"conv_block{i}")(x)
        return self.conv_block_out(x)


class ResidualBlock(nn.Module):
    """Two reflect-padded 3x3 convs with ChannelNorm and an identity skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.norm1 = ChannelNorm2d(channels)
        self.norm2 = ChannelNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        res = F.relu(self.norm1(self.conv1(self.pad(x))))
        res = self.norm2(self.conv2(self.pad(res)))
        return x + res


class Generator(nn.Module):
    """Quantized latent (N, C, h, w) -> image (N, 3, 16h, 16w), before any output mapping."""

    def __init__(
        self,
        latent_channels: int = LATENT_CHANNELS,
        widths: tuple[int, ...] = tuple(reversed(ENCODER_WIDTHS)),
        n_residual_blocks: int = N_RESIDUAL_BLOCKS,
    ) -> None:
        super().__init__()
        self.n_residual_blocks = n_residual_blocks
        self.conv_block_init = nn.Sequential(
            ChannelNorm2d(latent_channels),
            nn.ReflectionPad2d(1),
            nn.Conv2d(latent_channels, widths[0], 3),
            ChannelNorm2d(widths[0]),
        )
        for m in range(n_residual_blocks):
            self.add_module(f"resblock_{m}", ResidualBlock(widths[0]))
        for i in range(1, 5):
            block = nn.Sequential(
                nn.ConvTranspose2d(widths[i - 1], widths[i], 3, stride=2, padding=1, output_padding=1),
                ChannelNorm2d(widths[i]),
                nn.ReLU(),
            )
            self.add_module(f"upconv_block{i}", block)
        self.conv_block_out = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(widths[4], 3, 7))

    def forward(self, y: Tensor) -> Tensor:
        head = self.conv_block_init(y)
        x = head
        for m in range(self.n_residual_blocks):
            x = getattr(self, f"resblock_{m}")(x)
        x = x + head  # the generator's long skip around all residual blocks
        for i in range(1, 5):
            x = getattr(self, f"upconv_block{i}")(x)
        return self.conv_block_out(x)


class HyperAnalysis(nn.Module):
    """Latent (N, C, h, w) -> hyper-latent (N, N_h, h/4, w/4)."""

    n_downsampling_layers = 2

    def __init__(self, latent_channels: int, filters: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(latent_channels, filters, 3, padding=1)
        self.conv2 = nn.Conv2d(filters, filters, 5, stride=2, padding=2, padding_mode="reflect")
        self.conv3 = nn.Conv2d(filters, filters, 5, stride=2, padding=2, padding_mode="reflect")

    def forward(self, y: Tensor) -> Tensor:
        return self.conv3(F.relu(self.conv2(F.relu(self.conv1(y)))))


class HyperSynthesis(nn.Module):
    """Hyper-latent -> one parameter map (mean or scale) per latent element."""

    def __init__(self, latent_channels: int, filters: int) -> None:
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(filters, filters, 5, stride=2, padding=2, output_padding=1)
        self.conv2 = nn.ConvTranspose2d(filters, filters, 5, stride=2, padding=2, output_padding=1)
        self.conv3 = nn.ConvTranspose2d(filters, latent_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        return self.conv3(F.relu(self.conv2(F.relu(self.conv1(z)))))


class HyperlatentDensity(nn.Module):
    """Ballé et al.'s (2018) non-parametric factorized density, one per hyper-latent channel.

    Parameters ``H_k``, ``a_k``, ``b_k`` as in the port. Unlike CompressAI's
    ``EntropyBottleneck`` the port keeps the tanh factor on the last layer too,
    so its parameters cannot simply be renamed into CompressAI's.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = DENSITY_FILTERS, init_scale: float = 10.0) -> None:
        super().__init__()
        self.channels = channels
        self.filters = tuple(filters)
        dims = (1, *self.filters, 1)
        scale = init_scale ** (1 / (len(self.filters) + 1))
        for k in range(len(self.filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[k + 1]))
            self.register_parameter(f"H_{k}", nn.Parameter(torch.full((channels, dims[k + 1], dims[k]), init)))
            self.register_parameter(f"a_{k}", nn.Parameter(torch.zeros(channels, dims[k + 1], 1)))
            self.register_parameter(f"b_{k}", nn.Parameter(torch.empty(channels, dims[k + 1], 1).uniform_(-0.5, 0.5)))

    def cdf_logits(self, x: Tensor) -> Tensor:
        """Logit of the cumulative density at ``x``, shaped (channels, 1, n)."""
        for k in range(len(self.filters) + 1):
            x = torch.matmul(F.softplus(getattr(self, f"H_{k}")), x) + getattr(self, f"b_{k}")
            x = x + torch.tanh(getattr(self, f"a_{k}")) * torch.tanh(x)
        return x

    @torch.no_grad()
    def quantiles(self, tail_mass: float, radius: float = 1e4, steps: int = 60) -> Tensor:
        """Lower tail, median and upper tail per channel, shape (channels, 3), by bisection.

        The cdf is monotone (softplus weights, |tanh(a)| < 1), so bisection is exact enough.
        """
        t = math.log(2 / tail_mass - 1)
        target = torch.tensor([-t, 0.0, t]).view(1, 1, 3)
        lo = torch.full((self.channels, 1, 3), -radius)
        hi = torch.full((self.channels, 1, 3), radius)
        for _ in range(steps):
            mid = (lo + hi) / 2
            below = self.cdf_logits(mid) < target
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return ((lo + hi) / 2).view(self.channels, 3)


class Hyperprior(nn.Module):
    """Mean-scale hyperprior: hyper-analysis, the two hyper-syntheses and the hyper-latent density."""

    def __init__(
        self,
        latent_channels: int = LATENT_CHANNELS,
        filters: int = HYPERLATENT_FILTERS,
        density_filters: tuple[int, ...] = DENSITY_FILTERS,
    ) -> None:
        super().__init__()
        self.analysis_net = HyperAnalysis(latent_channels, filters)
        self.synthesis_mu = HyperSynthesis(latent_channels, filters)
        self.synthesis_std = HyperSynthesis(latent_channels, filters)
        self.hyperlatent_likelihood = HyperlatentDensity(filters, density_filters)

    def latent_params(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """Predicted mean and (lower-bounded) scale of every latent element."""
        return self.synthesis_mu(z_hat), self.synthesis_std(z_hat).clamp_min(SCALE_BOUND)


class HiFiCModel(nn.Module):
    """HiFiC's networks with the port's parameter names; the default size is the checkpoints'.

    ``normalize_input_image`` (the port's ``-norm``): the networks see images in
    [-1, 1] and the generator output goes through tanh and ``(x + 1) / 2``.
    ``likelihood``: ``"gaussian"`` or ``"logistic"`` latent distribution.
    """

    def __init__(
        self,
        latent_channels: int = LATENT_CHANNELS,
        widths: tuple[int, ...] = ENCODER_WIDTHS,
        n_residual_blocks: int = N_RESIDUAL_BLOCKS,
        hyperlatent_filters: int = HYPERLATENT_FILTERS,
        density_filters: tuple[int, ...] = DENSITY_FILTERS,
        *,
        normalize_input_image: bool = False,
        likelihood: str = "gaussian",
    ) -> None:
        super().__init__()
        if likelihood not in ("gaussian", "logistic"):
            raise HacError(f"HiFiC likelihood must be 'gaussian' or 'logistic', not {likelihood!r}")
        self.Encoder = Encoder(latent_channels, tuple(widths))
        self.Generator = Generator(latent_channels, tuple(reversed(widths)), n_residual_blocks)
        self.Hyperprior = Hyperprior(latent_channels, hyperlatent_filters, tuple(density_filters))
        self.normalize_input_image = bool(normalize_input_image)
        self.likelihood = likelihood

    def analysis(self, x: Tensor, *, normalize: bool | None = None) -> Tensor:
        """[0, 1] images -> latents: the image reflect-padded to a multiple of 16, the latent to ``latent_shape``."""
        if self.normalize_input_image if normalize is None else normalize:
            x = x * 2 - 1
        h, w = x.shape[-2:]
        y = self.Encoder(_pad_bottom_right(x, _image_side(h), _image_side(w)))
        return _pad_bottom_right(y, _latent_side(h), _latent_side(w))

    def synthesis(self, y_hat: Tensor, size: tuple[int, int]) -> Tensor:
        """Quantized latents -> [0, 1] images cropped to ``size``."""
        x = self.Generator(y_hat)
        if self.normalize_input_image:
            x = (torch.tanh(x) + 1) / 2
        return x[..., : size[0], : size[1]].clamp(0, 1)

    def forward(self, x: Tensor, *, normalize: bool | None = None) -> Tensor:
        """Differentiable reconstruction: hard-rounded hyper-latents, straight-through latents."""
        y = self.analysis(x, normalize=normalize)
        with torch.no_grad():  # the means only shift the rounding grid: their gradient cancels
            mean, _ = self.Hyperprior.latent_params(torch.round(self.Hyperprior.analysis_net(y)))
        # Round around the predicted mean in the forward pass, identity in the backward pass:
        # hard rounding alone has zero gradient, which would be gradient masking.
        y_hat = y + (torch.round(y - mean) - (y - mean)).detach()
        return self.synthesis(y_hat, (x.shape[-2], x.shape[-1]))

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], *, what: str = "checkpoint", **kwargs: Any) -> "HiFiCModel":
        """Build the model the state dict describes (sizes read from its tensors) and load it."""
        arch = _infer_architecture(state, what)
        with torch.device("meta"):  # no 700 MB of random init just to overwrite it
            model = cls(**arch, **kwargs)
        expected = model.state_dict()
        missing = [k for k in expected if k not in state]
        if missing:
            raise WeightsNotFound(
                f"{what} does not fit HiFiC: {len(missing)} keys missing (e.g. {missing[:3]}); "
                f"expected a checkpoint of {PORT_URL}"
            )
        wrong = [f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}"
                 for k, v in expected.items() if state[k].shape != v.shape]
        if wrong:
            raise WeightsNotFound(f"{what} does not fit HiFiC: shape mismatch in {wrong[:3]}")
        model.load_state_dict({k: state[k].float() for k in expected}, assign=True)
        return model


def _infer_architecture(state: dict[str, Tensor], what: str) -> dict[str, Any]:
    """Read widths, latent channels, residual blocks and hyper sizes from the tensors themselves."""
    try:
        widths = tuple(state[f"Encoder.conv_block{i}.1.weight"].shape[0] for i in range(1, 6))
        latent_channels = state["Encoder.conv_block_out.1.weight"].shape[0]
        hyper = state["Hyperprior.analysis_net.conv1.weight"].shape[0]
        n_layers = sum(1 for k in state if k.startswith("Hyperprior.hyperlatent_likelihood.H_"))
        density = tuple(state[f"Hyperprior.hyperlatent_likelihood.H_{k}"].shape[1] for k in range(n_layers - 1))
    except KeyError as exc:
        sample = sorted(state)[:3]
        raise WeightsNotFound(
            f"{what} is not a HiFiC checkpoint in the layout of {PORT_URL}: key {exc} is missing "
            f"(it holds {len(state)} tensors, e.g. {sample})"
        ) from None
    blocks = {k.split(".")[1] for k in state if k.startswith("Generator.resblock_")}
    return dict(
        latent_channels=latent_channels, widths=widths, n_residual_blocks=len(blocks),
        hyperlatent_filters=hyper, density_filters=density,
    )


# --------------------------------------------------------------------------- checkpoints


class _Opaque:
    """Inert stand-in for a class a checkpoint names and we do not trust: keeps its state as data."""

    state: Any = None  # NEWOBJ creates instances without calling __init__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state = dict(kwargs)

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"state": state}


def _safe_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` that tolerates the port's ``args`` entry.

    ``argparse.Namespace`` is allowed for the duration of the call only. Any other
    class the file names (found with ``get_unsafe_globals_in_checkpoint``) is replaced
    by the inert ``_Opaque``: nothing from the file is ever executed, no plain pickle.
    """
    kwargs = dict(map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, **kwargs)
    except Exception as exc:  # corrupt zip, legacy format, unknown globals: several types
        first = exc
    try:
        names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(path) if n != "argparse.Namespace"]
    except Exception:
        names = []
    if names:
        try:
            with torch.serialization.safe_globals([argparse.Namespace, *[(_Opaque, n) for n in names]]):
                return torch.load(path, **kwargs)
        except Exception as exc:
            first = exc
    raise WeightsNotFound(
        f"cannot load HiFiC checkpoint {path} with torch.load(weights_only=True): {type(first).__name__}: {first}. "
        f"The file is corrupt or truncated (re-download it), or holds objects that need arbitrary code to load "
        f"(re-save it as {{'model_state_dict': ..., 'args': dict(...)}} from a trusted session)"
    ) from first


def _args_dict(args: Any) -> dict[str, Any] | None:
    """The port stores its training args as a dict; accept a Namespace or a stub too."""
    if args is None:
        return None
    if isinstance(args, dict):
        return args
    if isinstance(args, _Opaque):
        return args.state if isinstance(args.state, dict) else {}
    return dict(vars(args)) if hasattr(args, "__dict__") else None


def load_checkpoint(path: Path | str) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    """State dict and stored training args (None when absent) of a port checkpoint, on CPU."""
    path = Path(path)
    check_checkpoint_file(path, "HiFiC checkpoint",
                          " (Google Drive serves a confirmation page for large files)")
    obj = _safe_load(path)
    if not isinstance(obj, dict):
        raise WeightsNotFound(f"HiFiC checkpoint {path} holds a {type(obj).__name__}, not a dict")
    args = _args_dict(obj.get("args"))
    state = next((obj[k] for k in ("model_state_dict", "state_dict") if isinstance(obj.get(k), dict)), obj)
    # multi-GPU training may leave a "module." prefix
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}
    return state, args


def _settings(args: dict[str, Any] | None, variant: Variant | None) -> tuple[bool, str, str]:
    """Input normalisation and likelihood: from the stored args when present, else the variant's documented default."""
    default_norm = variant.normalize_input if variant else False
    default_lik = variant.likelihood if variant else "gaussian"
    if args is None:
        return default_norm, default_lik, _defaults_label(variant)
    for flag in ("sample_noise", "use_latent_mixture_model"):
        if args.get(flag):
            raise HacError(f"HiFiC checkpoints trained with {flag}=True are not supported")
    norm = bool(args.get("normalize_input_image", default_norm))
    lik = str(args.get("likelihood_type", default_lik))
    where = "checkpoint args" if "normalize_input_image" in args else _defaults_label(variant)
    return norm, lik, where


def _defaults_label(variant: Variant | None) -> str:
    return f"defaults for hific_{variant.name}" if variant else "defaults"


# --------------------------------------------------------------------------- entropy coding


@functools.cache
def _coder_classes() -> tuple[type, type, type]:
    """CompressAI entropy models adapted to the port (built on first use: importing CompressAI is slow)."""
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional

    class PortBottleneck(EntropyBottleneck):
        """CompressAI's factorized coder evaluating the port's density."""

        def __init__(self, density: HyperlatentDensity) -> None:
            super().__init__(density.channels, filters=density.filters, tail_mass=TAIL_MASS)
            self.density = density

        def _logits_cumulative(self, inputs: Tensor, stop_gradient: bool) -> Tensor:
            return self.density.cdf_logits(inputs)

    class LogisticConditional(GaussianConditional):
        """``GaussianConditional`` with a logistic distribution (``hific_med`` was trained with one)."""

        def _standardized_cumulative(self, inputs: Tensor) -> Tensor:
            return torch.sigmoid(inputs)

        @staticmethod
        def _standardized_quantile(quantile: float) -> float:
            return math.log(quantile / (1 - quantile))

    return PortBottleneck, GaussianConditional, LogisticConditional


def _scale_table(low: float = SCALE_BOUND, high: float = 256.0, levels: int = 64) -> list[float]:
    return torch.exp(torch.linspace(math.log(low), math.log(high), levels)).tolist()


def build_entropy_models(model: HiFiCModel) -> tuple[Any, Any]:
    """rANS tables for the hyper-latents and the latents, on CPU, from ``model``'s current weights."""
    bottleneck_cls, gaussian_cls, logistic_cls = _coder_classes()
    density = copy.deepcopy(model.Hyperprior.hyperlatent_likelihood).cpu().float()
    bottleneck = bottleneck_cls(density)
    q = density.quantiles(TAIL_MASS)
    # The port's forward pass rounds hyper-latents to integers; an integer "median" makes the
    # coder's round(z - median) + median code exactly those integers.
    q[:, 1] = q[:, 1].round()
    q[:, 0] = torch.minimum(q[:, 0], q[:, 1])
    q[:, 2] = torch.maximum(q[:, 2], q[:, 1])
    bottleneck.quantiles.data = q.view(-1, 1, 3)
    bottleneck.update(force=True)
    conditional_cls = logistic_cls if model.likelihood == "logistic" else gaussian_cls
    conditional = conditional_cls(_scale_table(), scale_bound=SCALE_BOUND, tail_mass=TAIL_MASS)
    conditional.update()
    return bottleneck, conditional


# Per-image payload: format version, latent height and width, length of the hyper-latent string.
_HEADER = struct.Struct("<BHHI")
_VERSION = 1


def _pack(latent_hw: tuple[int, int], z_string: bytes, y_string: bytes) -> bytes:
    return _HEADER.pack(_VERSION, latent_hw[0], latent_hw[1], len(z_string)) + z_string + y_string


def _unpack(payload: bytes) -> tuple[tuple[int, int], bytes, bytes]:
    if len(payload) < _HEADER.size:
        raise HacError(f"HiFiC payload of {len(payload)} bytes is shorter than its header")
    version, h, w, nz = _HEADER.unpack_from(payload)
    if version != _VERSION:
        raise HacError(f"HiFiC payload has format version {version}; this build reads version {_VERSION}")
    body = payload[_HEADER.size:]
    return (h, w), body[:nz], body[nz:]


def latent_shape(height: int, width: int) -> tuple[int, int]:
    """Size of the coded latent for an image (see ``HiFiCModel.analysis``)."""
    return _latent_side(height), _latent_side(width)


def _latent_side(n: int) -> int:
    # 1/16 of the padded image, up to the hyper stride; at least MIN_LATENT because the
    # hyper-encoder's reflect padding needs 4 hyper-pixels before its last stride-2 conv
    # (the port itself fails on images under 113 px).
    side = math.ceil(_image_side(n) / STRIDE)
    return max(math.ceil(side / HYPER_STRIDE) * HYPER_STRIDE, MIN_LATENT)


def _image_side(n: int) -> int:
    # A multiple of 16, and at least MIN_IMAGE: the encoder's last reflect pad needs a 2-pixel latent.
    return max(math.ceil(n / STRIDE) * STRIDE, MIN_IMAGE)


def _pad_bottom_right(x: Tensor, height: int, width: int) -> Tensor:
    """Pad to ``height`` x ``width`` (reflect, as the port; replicate where the input is too small to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = height - h, width - w
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x


# --------------------------------------------------------------------------- codec


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
        state, args = load_checkpoint(path)
        variant = VARIANTS.get(quality) if quality is not None else None
        norm, likelihood, where = _settings(args, variant)
        model = HiFiCModel.from_state_dict(
            state, what=f"HiFiC checkpoint {path}", normalize_input_image=norm, likelihood=likelihood
        )
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
        h, w = x.shape[-2:]
        bottleneck, conditional = self.entropy_models()
        with torch.no_grad():
            y = self.model.analysis(x.to(self.device), normalize=self._normalize())
            z = self.model.Hyperprior.analysis_net(y).cpu()
            z_strings = bottleneck.compress(z)
            # Predict from the decoded hyper-latents, exactly as the decoder will.
            z_hat = bottleneck.decompress(z_strings, z.shape[-2:])
            mean, scale = self._latent_params(z_hat)
            y_strings = conditional.compress(y.cpu(), conditional.build_indexes(scale), means=mean)
        latent_hw = (y.shape[-2], y.shape[-1])
        return Encoded([_pack(latent_hw, zs, ys) for zs, ys in zip(z_strings, y_strings)], h, w)

    def decompress(self, encoded: Encoded) -> Tensor:
        if not encoded.payloads:
            return torch.empty(0, 3, encoded.height, encoded.width, device=self.device)
        parts = [_unpack(p) for p in encoded.payloads]
        expected = latent_shape(encoded.height, encoded.width)
        if any(shape != expected for shape, _, _ in parts):
            raise HacError(
                f"HiFiC payload latent shapes {sorted({p[0] for p in parts})} do not fit a "
                f"{encoded.height}x{encoded.width} image (expected {expected})"
            )
        bottleneck, conditional = self.entropy_models()
        with torch.no_grad():
            hz, wz = expected[0] // HYPER_STRIDE, expected[1] // HYPER_STRIDE
            z_hat = bottleneck.decompress([p[1] for p in parts], (hz, wz))
            mean, scale = self._latent_params(z_hat)
            y_hat = conditional.decompress([p[2] for p in parts], conditional.build_indexes(scale), means=mean)
            return self.model.synthesis(y_hat.to(self.device), (encoded.height, encoded.width))

    def approximate(self, x: Tensor) -> Tensor:
        check_images(x)
        return self.model(x.to(self.device), normalize=self._normalize()).to(x.device)


def hific_factory(quality: int, *, weights_dir: Path | None = None, **_: Any) -> HiFiC:
    variant = VARIANTS[quality]
    folder = Path(weights_dir) if weights_dir is not None else hub_checkpoint_dir()
    path = folder / variant.filename
    if not path.is_file():
        where = "" if weights_dir is not None else " (the default folder; no --hac-weights-dir was given)"
        raise WeightsNotFound(
            f"HiFiC-{variant.name} checkpoint {variant.filename} not found in {folder}{where}. HiFiC weights are "
            f"never downloaded automatically: get {variant.filename} (~2 GB, target {variant.target_bpp} bpp) from the "
            f"'Pretrained Models' table of {PORT_URL} (Google Drive: {variant.url}), save it as {path}, "
            f"or pass --hac-weights-dir=<folder holding {variant.filename}>"
        )
    return HiFiC.from_checkpoint(path, quality)
