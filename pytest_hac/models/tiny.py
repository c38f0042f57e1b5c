"""Two small digit classifiers, stand-ins for the paper's CNN and vision transformer.

Both take float RGB in [0, 1], NCHW, 32x32, normalize inside and return 10 logits.
Trained by ``scripts/train_tiny_classifiers.py``; see ``MODEL_CARD.md``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

#: Mean and std of the digits training split (grey images repeated over 3 channels).
DIGITS_MEAN, DIGITS_STD = 0.31, 0.32


class _Normalized(nn.Module):
    """Holds the input normalization as persistent buffers, so it travels with the state dict."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((1, 3, 1, 1), DIGITS_MEAN))
        self.register_buffer("std", torch.full((1, 3, 1, 1), DIGITS_STD))

    def normalize(self, x: Tensor) -> Tensor:
        """Map [0, 1] pixels to the standardized scale the weights were trained on."""
        return (x - self.mean) / self.std


class TinyCNN(_Normalized):
    """Three conv blocks and a linear head (about 24k parameters)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, 16), block(16, 32), block(32, 64))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(self.normalize(x)))


class _EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block: multi-head self-attention, then a GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x: Tensor) -> Tensor:
        # Written out rather than nn.TransformerEncoderLayer / nn.MultiheadAttention: their eval-mode
        # "fast path" runs only without autograd, so logits under an attack's gradient would differ
        # (by ~1e-6) from the logits the final no-grad evaluation sees.
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5).softmax(dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class TinyViT(_Normalized):
    """A small vision transformer: 4x4 patches, cls token, learned positions, 4 pre-norm blocks of width 64."""

    def __init__(self, num_classes: int = 10, dim: int = 64, depth: int = 4, heads: int = 4, patch: int = 4) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        n = (32 // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(_EncoderBlock(dim, heads, 2 * dim) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch(self.normalize(x)).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.blocks(tokens))[:, 0])


ARCHITECTURES = {"tiny-cnn": TinyCNN, "tiny-vit": TinyViT}


def load_tiny_classifier(name: str, path: Path | None = None) -> nn.Module:
    """Build ``tiny-cnn`` or ``tiny-vit`` with its embedded weights (or those at ``path``), in eval mode."""
    from ..errors import unknown_name
    from ..io.checkpoints import EMBEDDED_WEIGHTS, load_state_dict

    if name not in ARCHITECTURES:
        raise unknown_name("tiny classifier", name, ARCHITECTURES)
    model = ARCHITECTURES[name]()
    path = path or EMBEDDED_WEIGHTS / f"{name}.pt"
    state = load_state_dict(path, expected_keys=model.state_dict().keys(),
                            what=f"embedded {name} weights (retrain with scripts/train_tiny_classifiers.py)")
    model.load_state_dict(state, strict=True)
    return model.eval()
