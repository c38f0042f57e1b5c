"""Measure the numbers of the embedded codecs' model card (pytest_hac/weights/CODECS.md).

    python scripts/codec_card.py            # Markdown tables on stdout

For tiny-mse and tiny-hific at qualities 1..3, on the 20 embedded evaluation photos
(resize 256, centre crop 224): bits per pixel from the real bytes, PSNR of the 8-bit
reconstruction (mean over photos), EfficientNet-Lite0 top-1 accuracy on the
reconstructions of the clean photos and of oblivious PGD examples (L-inf 4/255, 10 steps, made
once against the bare model, as the ``oblivious`` threat does), and JPEG (libjpeg 4:2:0) at the
quality whose mean bpp is nearest.
Also encode/decode speed at 224 px on one CPU thread.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor

from pytest_hac.attacks import build_attack, make_spec
from pytest_hac.codecs import get_codec
from pytest_hac.core.engine.engine import mean_psnr
from pytest_hac.data import load_dataset
from pytest_hac.models import get_model

CODECS = [(kind, q) for kind in ("tiny-mse", "tiny-hific") for q in (1, 2, 3)]


def measure(codec, model, x: Tensor, x_adv: Tensor, labels: Tensor) -> dict[str, float]:
    """bpp, PSNR and accuracy (clean and oblivious PGD) of one codec on the batch ``x``."""
    with torch.inference_mode():
        x_hat, bpp = codec.roundtrip(x)
        correct = model(x_hat).argmax(1) == labels
        adv_correct = model(codec.roundtrip(x_adv)[0]).argmax(1) == labels
    return {"bpp": bpp.mean().item(), "psnr": mean_psnr(x_hat, x), "acc": correct.float().mean().item(),
            "correct": int(correct.sum()), "adv": int(adv_correct.sum())}


def speed(codec, x: Tensor, repeats: int = 2) -> tuple[float, float]:
    """Images per second for compress and for decompress (best of ``repeats``)."""
    enc_best = dec_best = float("inf")
    with torch.inference_mode():
        codec.compress(x[:1])  # entropy tables, lazy imports
        for _ in range(repeats):
            t = time.perf_counter()
            encoded = codec.compress(x)
            enc_best = min(enc_best, time.perf_counter() - t)
            t = time.perf_counter()
            codec.decompress(encoded)
            dec_best = min(dec_best, time.perf_counter() - t)
    return len(x) / enc_best, len(x) / dec_best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset("embedded", resize=256, crop=224)
    x, labels = data.images, data.labels
    model = get_model("efficientnet-lite0")
    n = len(labels)

    with torch.inference_mode():
        clean = (model(x).argmax(1) == labels).float().mean().item()
    torch.manual_seed(0)
    x_adv = build_attack(model, make_spec("pgd", "4/255", steps=10))(x, labels)
    with torch.inference_mode():
        undefended = int((model(x_adv).argmax(1) == labels).sum())
    jpeg = {q: measure(get_codec("jpeg", q), model, x, x_adv, labels) for q in range(1, 101)}

    print(f"{n} embedded photos, 224x224; EfficientNet-Lite0 without a codec: clean {round(clean * n)}/{n}, "
          f"oblivious PGD {undefended}/{n}\n")
    print("| codec | quality | bpp | PSNR (dB) | clean | PGD | JPEG q at nearest bpp | JPEG bpp | JPEG PSNR "
          "| JPEG clean | JPEG PGD |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for kind, q in CODECS:
        codec = get_codec(kind, q)
        m = measure(codec, model, x, x_adv, labels)
        jq = min(jpeg, key=lambda k: abs(jpeg[k]["bpp"] - m["bpp"]))
        j = jpeg[jq]
        print(f"| {kind} | {q} | {m['bpp']:.3f} | {m['psnr']:.2f} | {m['correct']}/{n} | {m['adv']}/{n} | {jq} | "
              f"{j['bpp']:.3f} | {j['psnr']:.2f} | {j['correct']}/{n} | {j['adv']}/{n} |")
        rows.append((kind, q, codec))

    print("\n| codec | quality | encode img/s | decode img/s | forward-vs-decoded mean abs diff |")
    print("|---|---|---|---|---|")
    for kind, q, codec in rows:
        enc, dec = speed(codec, x)
        with torch.no_grad():
            diff = (codec.approximate(x) - codec.decompress(codec.compress(x))).abs().mean().item()
        print(f"| {kind} | {q} | {enc:.1f} | {dec:.1f} | {diff:.2e} |")
    print(f"\n(speed: batch of {n} images at 224x224, torch threads = {args.threads})")


if __name__ == "__main__":
    main()
