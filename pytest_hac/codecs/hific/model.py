"""HiFiC's networks (Mentzer et al. 2020) with the parameter names of the widely used PyTorch port.

The port is github.com/Justin-Tan/high-fidelity-generative-compression (``src/network/encoder.py``,
``generator.py``, ``hyper.py``, ``src/hyperprior.py``, ``src/compression/hyperprior_model.py``,
``src/normalisation/channel.py``); with its names, its public checkpoints load as they are
(:mod:`.checkpoint`):

* ``Encoder``: 7x7 conv then four stride-2 3x3 convs (60..960 channels, ChannelNorm,
  ReLU) to C=220 latent channels at 1/16 resolution;
* ``Hyperprior``: hyper-analysis (``analysis_net``), two hyper-syntheses for the
  mean and scale of each latent (``synthesis_mu``, ``synthesis_std``) and a
  factorized density for the hyper-latents (``hyperlatent_likelihood``);
* ``Generator``: ChannelNorm + conv head, residual blocks (9 in the checkpoints),
  four transposed convs back to full resolution and a 7x7 output conv.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import HacError
from ..base import pad_to_multiple, padded_side

ENCODER_WIDTHS = (60, 120, 240, 480, 960)
LATENT_CHANNELS = 220
HYPERLATENT_FILTERS = 320
N_RESIDUAL_BLOCKS = 9
DENSITY_FILTERS = (3, 3, 3)
SCALE_BOUND = 0.11  # the port's MIN_SCALE: latent scales are lower-bounded to this
STRIDE = 16  # image -> latent
HYPER_STRIDE = 4  # latent -> hyper-latent
MIN_LATENT = 8  # smallest latent side the hyper-encoder accepts
MIN_IMAGE = 32  # smallest (padded) image side the encoder accepts


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
        """[0, 1] images -> latents: the image padded to a multiple of 16, the latent to :func:`latent_shape`."""
        if self.normalize_input_image if normalize is None else normalize:
            x = x * 2 - 1
        y = self.Encoder(pad_to_multiple(x, STRIDE, minimum=MIN_IMAGE)[0])
        return pad_to_multiple(y, HYPER_STRIDE, minimum=MIN_LATENT)[0]

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


def latent_shape(height: int, width: int) -> tuple[int, int]:
    """Size of the coded latent for an image (see ``HiFiCModel.analysis``)."""
    return _latent_side(height), _latent_side(width)


def _latent_side(n: int) -> int:
    # The image is padded to a multiple of 16, at least MIN_IMAGE (the encoder's last reflect pad
    # needs a 2-pixel latent); its latent to a multiple of the hyper stride, at least MIN_LATENT,
    # because the hyper-encoder's reflect padding needs 4 hyper-pixels before its last stride-2
    # conv (the port itself fails on images under 113 px).
    return padded_side(padded_side(n, STRIDE, MIN_IMAGE) // STRIDE, HYPER_STRIDE, MIN_LATENT)
