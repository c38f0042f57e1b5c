"""Train the embedded tiny codecs ``tiny-mse`` and ``tiny-hific`` (qualities 1..3) on a CPU.

    python scripts/train_tiny_codecs.py            # about 40 minutes on one thread
    python scripts/train_tiny_codecs.py --scale 0.02 --out /tmp/zoo   # a smoke run

Training data are only free photos that install with the project's dependencies
(public domain / CC0 photos of scikit-image, scikit-learn's two CC BY 2.0 sample
photos, matplotlib's public-domain Grace Hopper portrait); never the evaluation
photos (foolbox's ImageNet samples). Everything is seeded and single-threaded, so a
rerun writes the same weights on the same machine and library versions.

Both codecs are CompressAI's MeanScaleHyperprior at the size in
``pytest_hac.codecs.tiny.TINY_ARCHITECTURE``:

* tiny-mse: rate + lambda * 255^2 * MSE. A base model is trained at the highest
  rate, then fine-tuned to each of the three rate targets.
* tiny-hific: initialised from tiny-mse at the same quality and fine-tuned in the
  manner of HiFiC (Mentzer et al. 2020): rate + lambda * (255^2 * MSE + k_P * P + k_G * G)
  with HiFiC's ratios (k_P = 1 / k_M, k_G = beta / k_M, k_M = 0.075 * 2^-5, beta = 0.15),
  P a perceptual distance, G the non-saturating loss of a small latent-conditional
  patch discriminator. No LPIPS weights exist offline, so P is LPIPS's recipe
  (channel-normalised deep features, squared distance, averaged) on the ImageNet
  EfficientNet-Lite0 that ships with the dependencies (stem and blocks 2, 4, 7:
  strides 2..16, no class-level layers).

Rates are held on target during training: the rate weight adapts (a Lagrange
multiplier), so the two codecs of a quality sit at about the same bpp.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from pytest_hac.codecs.ste import round_ste
from pytest_hac.codecs.tiny import TINY_ARCHITECTURE, build_tiny_codec_net, load_tiny_codec, load_tiny_codec_net
from pytest_hac.io.checkpoints import EMBEDDED_WEIGHTS

CROP = 128  # a multiple of the model's stride (64)
BATCH = 8
MIN_SIDE = CROP + 32

#: (source, name, licence): what the model card lists.
SOURCES: list[tuple[str, str, str]] = [
    ("skimage", "astronaut", "public domain (NASA)"),
    ("skimage", "chelsea", "CC0 (Stefan van der Walt)"),
    ("skimage", "coffee", "CC0 (Rachel Michetti)"),
    ("skimage", "rocket", "public domain (SpaceX)"),
    ("skimage", "hubble_deep_field", "public domain (NASA)"),
    ("skimage", "retina", "CC0 (Mikael Häggström, Wikimedia Commons)"),
    ("skimage", "camera", "CC0 (Lav Varshney), greyscale"),
    ("skimage", "brick", "CC0 (CC0Textures), greyscale"),
    ("skimage", "grass", "CC0 (CC0Textures), greyscale"),
    ("skimage", "gravel", "CC0 (CC0Textures), greyscale"),
    ("sklearn", "china.jpg", "CC BY 2.0, danielbuechele (Flickr)"),
    ("sklearn", "flower.jpg", "CC BY 2.0, vultilion (Flickr)"),
    ("matplotlib", "grace_hopper.jpg", "public domain (U.S. Navy)"),
]


@dataclass(frozen=True)
class Quality:
    """One rate point: its target bpp on training crops and the initial lambda."""

    quality: int
    target_bpp: float
    lmbda: float


QUALITIES = (Quality(1, 0.2, 0.0025), Quality(2, 0.45, 0.008), Quality(3, 0.9, 0.03))

# HiFiC's loss weights (Mentzer et al. 2020, section 4): d = k_M * MSE + k_P * LPIPS, beta for the GAN.
K_M = 0.075 * 2 ** -5
K_P = 1.0 / K_M
K_G = 0.15 / K_M


# --------------------------------------------------------------------------- data


def load_photo(source: str, name: str) -> np.ndarray:
    """One training photo as uint8 HxWx3."""
    if source == "skimage":
        from skimage import data

        img = getattr(data, name)()
    elif source == "sklearn":
        from sklearn.datasets import load_sample_image

        img = load_sample_image(name)
    else:
        from matplotlib import cbook

        with cbook.get_sample_data(name) as fh:
            img = np.asarray(Image.open(fh).convert("RGB"))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def pyramid(img: np.ndarray) -> list[Tensor]:
    """The photo at scales 1, 0.7, 0.5, 0.35 (Lanczos), as long as a crop still fits."""
    pil = Image.fromarray(img)
    levels = []
    for scale in (1.0, 0.7, 0.5, 0.35):
        w, h = round(pil.width * scale), round(pil.height * scale)
        if min(w, h) < MIN_SIDE:
            break
        level = pil if scale == 1.0 else pil.resize((w, h), Image.LANCZOS)
        levels.append(torch.from_numpy(np.asarray(level).copy()).permute(2, 0, 1))
    return levels


class Crops:
    """Random crops with horizontal flips from every photo at several scales (seeded)."""

    def __init__(self, seed: int) -> None:
        self.levels = [pyramid(load_photo(src, name)) for src, name, _ in SOURCES]
        self.gen = torch.Generator().manual_seed(seed)

    def _int(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.gen))

    def batch(self, n: int = BATCH, size: int = CROP) -> Tensor:
        out = []
        for _ in range(n):
            levels = self.levels[self._int(len(self.levels))]
            img = levels[self._int(len(levels))]
            top, left = self._int(img.shape[1] - size + 1), self._int(img.shape[2] - size + 1)
            crop = img[:, top:top + size, left:left + size]
            if self._int(2):
                crop = crop.flip(-1)
            out.append(crop)
        return torch.stack(out).float().div(255)


# --------------------------------------------------------------------------- rate-distortion forward


def rd_forward(net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(x_hat, y_hat, bpp): noisy latents for the rate, straight-through rounded ones for the
    decoder, i.e. the decoder trains on exactly what it will decode."""
    y = net.g_a(x)
    z = net.h_a(y)
    _, z_lik = net.entropy_bottleneck(z)
    medians = net.entropy_bottleneck._get_medians()
    z_hat = round_ste(z - medians) + medians
    scales, means = net.h_s(z_hat).chunk(2, 1)
    _, y_lik = net.gaussian_conditional(y, scales, means=means)
    y_hat = round_ste(y - means) + means
    bits = -(torch.log2(y_lik).sum() + torch.log2(z_lik).sum())
    return net.g_s(y_hat), y_hat, bits / (x.shape[0] * x.shape[2] * x.shape[3])


class RateControl:
    """A Lagrange multiplier on the rate that keeps the (smoothed) training bpp at ``target``."""

    def __init__(self, target: float, weight: float = 1.0, gain: float = 0.01) -> None:
        self.target, self.weight, self.gain = target, weight, gain
        self.bpp = target

    def update(self, bpp: float) -> None:
        self.bpp = 0.98 * self.bpp + 0.02 * bpp
        self.weight = min(max(self.weight * math.exp(self.gain * math.log(self.bpp / self.target)), 0.05), 20.0)


def optimizers(net: nn.Module, lr: float) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """CompressAI's split: the quantiles of the entropy bottleneck learn from the auxiliary loss only."""
    main = [p for n, p in net.named_parameters() if not n.endswith("quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith("quantiles")]
    return torch.optim.Adam(main, lr=lr), torch.optim.Adam(aux, lr=1e-3)


def cosine(step: int, steps: int, lr: float, final: float = 0.1) -> float:
    return lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * step / steps)))


def aux_step(net: nn.Module, opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    net.aux_loss().backward()
    opt.step()


def codec_step(net: nn.Module, opt: torch.optim.Optimizer, aux: torch.optim.Optimizer, loss: Tensor,
               rate: RateControl, bpp: Tensor) -> None:
    """One optimizer step of the codec (clipped), its entropy models' auxiliary step, and the rate control."""
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    aux_step(net, aux)
    rate.update(bpp.item())


def psnr(mse: float) -> float:
    return 10 * math.log10(1 / max(mse, 1e-10))


# --------------------------------------------------------------------------- tiny-mse


def train_mse(net: nn.Module, crops: Crops, steps: int, q: Quality, rate: RateControl, lr: float, log) -> None:
    """Rate + lambda * 255^2 * MSE, the rate weight held on target."""
    net.train()
    opt, aux = optimizers(net, lr)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = cosine(step, steps, lr)
        x = crops.batch()
        x_hat, _, bpp = rd_forward(net, x)
        mse = F.mse_loss(x_hat, x)
        codec_step(net, opt, aux, rate.weight * bpp + q.lmbda * 255 ** 2 * mse, rate, bpp)
        if step % 100 == 0 or step == steps - 1:
            log(step=step, bpp=bpp.item(), psnr=psnr(mse.item()), rate_weight=rate.weight)


# --------------------------------------------------------------------------- tiny-hific


class PerceptualDistance(nn.Module):
    """LPIPS's recipe on EfficientNet-Lite0 features: unit-normalise channels, squared distance, average."""

    LAYERS = (2, 4, 7)  # blocks ending at strides 4, 8, 16 (plus the stem at stride 2)

    def __init__(self) -> None:
        super().__init__()
        from pytest_hac.models import get_model

        self.model = get_model("efficientnet-lite0").requires_grad_(False)  # normalization inside, as evaluated

    def features(self, x: Tensor) -> list[Tensor]:
        # get_model wraps the registered module, Sequential(Normalize (TF-style), EfficientNet) (models/builtin.py).
        normalize, net = self.model.net
        h = net._swish(net._bn0(net._conv_stem(normalize((x - self.model.mean) / self.model.std))))
        out = [h]
        for i, block in enumerate(net._blocks[: max(self.LAYERS) + 1]):
            h = block(h)
            if i in self.LAYERS:
                out.append(h)
        return [f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) for f in out]

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        with torch.no_grad():
            ref = self.features(x)
        return torch.stack([(a - b).pow(2).sum(1).mean() for a, b in zip(self.features(x_hat), ref)]).mean()


class Discriminator(nn.Module):
    """HiFiC's conditional patch discriminator, scaled down: image + upsampled latent -> logits per patch."""

    def __init__(self, latent_channels: int, width: int = 32, stride: int = 16) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        self.stride = stride
        self.latent = sn(nn.Conv2d(latent_channels, 8, 3, padding=1))
        self.body = nn.Sequential(
            sn(nn.Conv2d(3 + 8, width, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * width, 4 * width, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(4 * width, 1, 1)),
        )

    def forward(self, x: Tensor, y_hat: Tensor) -> Tensor:
        cond = F.interpolate(F.leaky_relu(self.latent(y_hat), 0.2), scale_factor=self.stride, mode="nearest")
        return self.body(torch.cat([x * 2 - 1, cond], 1))


def train_hific(net: nn.Module, crops: Crops, steps: int, q: Quality, rate: RateControl, lr: float,
                perceptual: PerceptualDistance, log) -> None:
    """Rate + lambda * (255^2 MSE + k_P P + k_G G), alternating with discriminator updates."""
    net.train()
    disc = Discriminator(TINY_ARCHITECTURE["M"])
    opt, aux = optimizers(net, lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    for step in range(steps):
        x = crops.batch()
        x_hat, y_hat, bpp = rd_forward(net, x)
        cond = y_hat.detach()
        # Discriminator: real photos vs reconstructions, both conditioned on the latent.
        d_loss = F.softplus(-disc(x, cond)).mean() + F.softplus(disc(x_hat.detach(), cond)).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        # Generator (the codec): fool the updated discriminator.
        disc.requires_grad_(False)
        g_loss = F.softplus(-disc(x_hat, cond)).mean()
        disc.requires_grad_(True)
        mse = F.mse_loss(x_hat, x)
        p = perceptual(x_hat, x)
        codec_step(net, opt, aux, rate.weight * bpp + q.lmbda * (255 ** 2 * mse + K_P * p + K_G * g_loss), rate, bpp)
        if step % 50 == 0 or step == steps - 1:
            log(step=step, bpp=bpp.item(), psnr=psnr(mse.item()), perceptual=p.item(), g=g_loss.item(),
                d=d_loss.item(), rate_weight=rate.weight)


# --------------------------------------------------------------------------- driver


def check_real_rate(kind: str, quality: int, path: Path) -> dict[str, float]:
    """Real bytes and PSNR of the saved file on two 224 px training photos (not evaluation data)."""
    codec = load_tiny_codec(kind, quality, path)
    imgs = [load_photo("skimage", "astronaut"), load_photo("skimage", "coffee")]
    x = torch.stack([torch.from_numpy(np.asarray(Image.fromarray(i).resize((224, 224), Image.LANCZOS)).copy())
                     for i in imgs]).permute(0, 3, 1, 2).float().div(255)
    x_hat, bpp = codec.roundtrip(x)
    return {"bpp_224": bpp.mean().item(), "psnr_224": psnr(F.mse_loss(x_hat, x).item())}


#: Entropy tables are rebuilt from the weights by update(); the files leave them out.
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


def tiny_state_dict(net: nn.Module) -> dict[str, Tensor]:
    """What a tiny codec file holds (``pytest_hac.codecs.tiny`` reads it): transform weights in float16
    (halves the files), entropy-model parameters in float32 (medians and quantiles set the
    quantization grid), no entropy tables."""
    out = {}
    for key, value in net.state_dict().items():
        if key.rsplit(".", 1)[-1] in _TABLE_BUFFERS:
            continue
        if value.is_floating_point() and not key.startswith(("entropy_bottleneck.", "gaussian_conditional.")):
            value = value.half()
        out[key] = value.detach().clone().cpu()
    return out


def save(net: nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_state_dict(net), path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=EMBEDDED_WEIGHTS, help="folder for tiny-{mse,hific}-q{1,2,3}.pt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every step count (0.02: smoke run)")
    parser.add_argument("--base-steps", type=int, default=3500)
    parser.add_argument("--mse-steps", type=int, default=1000)
    parser.add_argument("--hific-steps", type=int, default=700)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # reproducible, and fair to the machine's other users
    torch.manual_seed(args.seed)
    steps = {k: max(1, round(getattr(args, f"{k}_steps") * args.scale)) for k in ("base", "mse", "hific")}
    start = time.time()

    def logger(stage: str):
        def log(**fields: float) -> None:
            fields = {k: round(v, 4) if isinstance(v, float) else v for k, v in fields.items()}
            print(json.dumps({"stage": stage, "t": round(time.time() - start), **fields}), flush=True)
        return log

    crops = Crops(args.seed)
    top = QUALITIES[-1]
    base = build_tiny_codec_net()
    base_rate = RateControl(top.target_bpp)
    # A high rate of learning with cosine decay: the short CPU schedule needs it (2e-4 learns ~3 dB slower).
    train_mse(base, crops, steps["base"], top, base_rate, 1e-3, logger("base"))

    mse_rates: dict[int, RateControl] = {}
    for q in QUALITIES:
        net = build_tiny_codec_net()
        net.load_state_dict(base.state_dict())
        rate = RateControl(q.target_bpp, weight=base_rate.weight if q is top else 1.0)
        train_mse(net, crops, steps["mse"], q, rate, 2e-4, logger(f"tiny-mse-q{q.quality}"))
        path = args.out / f"tiny-mse-q{q.quality}.pt"
        save(net, path)
        mse_rates[q.quality] = rate
        logger(f"tiny-mse-q{q.quality}")(step=-1, **check_real_rate("tiny-mse", q.quality, path))

    perceptual = PerceptualDistance()
    for q in QUALITIES:
        net = load_tiny_codec_net("tiny-mse", q.quality, args.out / f"tiny-mse-q{q.quality}.pt")
        # Hold the rate tiny-mse reached, so both codecs of a quality compare at equal bpp.
        done = mse_rates[q.quality]
        rate = RateControl(done.bpp, weight=done.weight)
        train_hific(net, crops, steps["hific"], q, rate, 1e-4, perceptual, logger(f"tiny-hific-q{q.quality}"))
        path = args.out / f"tiny-hific-q{q.quality}.pt"
        save(net, path)
        logger(f"tiny-hific-q{q.quality}")(step=-1, **check_real_rate("tiny-hific", q.quality, path))
    logger("done")(seconds=time.time() - start)


if __name__ == "__main__":
    main()
