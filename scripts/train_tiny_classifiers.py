"""Train the embedded digit classifiers tiny-cnn and tiny-vit (seeded, CPU, a few minutes).

    python scripts/train_tiny_classifiers.py [--out pytest_hac/weights] [--epochs N | --epochs-cnn 30 --epochs-vit 60]

Training uses only the train split of scikit-learn's digits (``pytest_hac.data.digits_split("train")``);
accuracy is measured on the held-out split. Writes the weights and their section of MODEL_CARD.md.
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pytest_hac.data import DIGITS_TEST, digits_split
from pytest_hac.models.tiny import ARCHITECTURES

START, END = "<!-- tiny-classifiers:start -->", "<!-- tiny-classifiers:end -->"


def shift(x: torch.Tensor, gen: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Random translations of up to ``pixels`` (zero fill): cheap augmentation for digits."""
    padded = F.pad(x, (pixels,) * 4)
    out = torch.empty_like(x)
    offsets = torch.randint(0, 2 * pixels + 1, (len(x), 2), generator=gen)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, dy:dy + x.shape[-2], dx:dx + x.shape[-1]]
    return out


def train(name: str, epochs: int, lr: float, seed: int = 0) -> tuple[torch.nn.Module, float, float]:
    """Train one architecture from ``seed``; return it in eval mode, its held-out accuracy and seconds taken."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, y = digits_split("train")
    model = ARCHITECTURES[name]()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * ((len(y) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 64):
            idx = order[i:i + 64]
            loss = F.cross_entropy(model(shift(x[idx], gen)), y[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - start
    model.eval()
    xt, yt = digits_split("test")
    with torch.inference_mode():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    return model, acc, seconds


def card(rows: list[tuple[str, torch.nn.Module, float, float, Path, int]]) -> str:
    """The MODEL_CARD.md block for both classifiers, between the START and END markers."""
    lines = [START, "## Embedded classifiers: tiny-cnn and tiny-vit", "",
             "Stand-ins for the paper's two model families (a CNN and a vision transformer), small enough for",
             "fast tests. Input: float RGB in [0, 1], NCHW, 32x32; normalization (mean 0.31, std 0.32) inside;",
             "output: 10 logits.", "",
             "| model | architecture | parameters | file size | held-out accuracy | training time (1 CPU thread) |",
             "|---|---|---|---|---|---|"]
    arch = {"tiny-cnn": "3 x (conv3x3, BN, ReLU, max-pool), 16-32-64 channels, linear head",
            "tiny-vit": "4x4 patches, cls token, learned positions, 4 pre-norm encoder blocks "
                        "(4-head self-attention, GELU MLP 128), width 64, linear head on the cls token"}
    for name, model, acc, seconds, path, _ in rows:
        params = sum(p.numel() for p in model.parameters())
        lines.append(f"| `{name}` | {arch[name]} | {params:,} | {path.stat().st_size / 1024:.0f} KiB | "
                     f"{acc:.3f} ({DIGITS_TEST} images) | {seconds:.0f} s |")
    epochs = ", ".join(f"{name} {n} epochs" for name, *_, n in rows)
    lines += ["", "Training command: `python scripts/train_tiny_classifiers.py` (seeded and deterministic: seed 0,",
              f"`torch.use_deterministic_algorithms`, one CPU thread, torch {torch.__version__}). {epochs};",
              "AdamW (weight decay 0.05), batch 64, one-cycle learning-rate schedule, label smoothing 0.05, random",
              "shifts of up to 2 pixels. Clean training only: no adversarial training, so neither model is robust.",
              "Training times are wall-clock on a shared CPU and vary from machine to machine.", "",
              "Data: scikit-learn's bundled copy of the UCI ML hand-written digits data set, distributed with",
              "scikit-learn under BSD-3-Clause (`sklearn.datasets.load_digits`: 1,797 8x8 images, the test part of",
              "E. Alpaydin and C. Kaynak, *Optical Recognition of Handwritten Digits*, UCI Machine Learning",
              "Repository, 1998, https://archive.ics.uci.edu/dataset/80). Images are upscaled bilinearly to 32x32",
              "and repeated over 3 channels (`pytest_hac.data.digits_split`). A fixed seeded split holds out",
              f"{DIGITS_TEST} images that are never used for training; `--hac-data=digits` evaluates on exactly",
              "those. The split is random over images, not over writers, so held-out accuracy is writer-dependent.",
              END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("pytest_hac/weights"))
    parser.add_argument("--epochs", type=int, help="epochs for both models (overrides the per-model defaults)")
    parser.add_argument("--epochs-cnn", type=int, default=30)
    parser.add_argument("--epochs-vit", type=int, default=60)
    args = parser.parse_args()
    if args.epochs is not None:
        args.epochs_cnn = args.epochs_vit = args.epochs
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rows = []
    for name, epochs, lr in (("tiny-cnn", args.epochs_cnn, 3e-3), ("tiny-vit", args.epochs_vit, 2e-3)):
        model, acc, seconds = train(name, epochs, lr)
        path = args.out / f"{name}.pt"
        torch.save(model.state_dict(), path)
        print(f"{name}: held-out accuracy {acc:.3f}, {seconds:.0f} s")
        rows.append((name, model, acc, seconds, path, epochs))
    cardfile = args.out / "MODEL_CARD.md"
    text = cardfile.read_text() if cardfile.exists() else "# Embedded models\n"
    block = card(rows)
    # A function replacement, so backslashes in the block are not read as escapes.
    if START in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, count=1, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    cardfile.write_text(text)


if __name__ == "__main__":
    main()
