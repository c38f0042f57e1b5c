"""The model contract: a :class:`Classifier` takes float RGB in [0, 1], NCHW, and returns logits.

Normalization lives inside it, so attacks, codecs and datasets never see normalized tensors.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import HacError


class Classifier(nn.Module):
    """A network plus what it needs to be evaluated fairly.

    Args:
        net: maps normalized NCHW tensors to logits.
        mean, std: per-channel normalization applied inside ``forward``.
        num_classes: number of logits.
        input_size: side of the square input the data are cropped to.
        resize_size: shorter side photos are resized to before the centre crop.
        label_space: "imagenet" (1000 ImageNet-1k classes), "digits", or "index".
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        num_classes: int,
        input_size: int,
        resize_size: int,
        label_space: str,
        name: str,
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.num_classes = num_classes
        self.input_size = input_size
        self.resize_size = resize_size
        self.label_space = label_space
        self.name = name
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel: how a built-in network that expects normalized inputs takes pixels."""

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def restrict(model: Classifier, classes: list[int]) -> Classifier:
    """``model`` with only the logits of ``classes`` (in that order), as the paper does for Imagenette."""
    index = torch.tensor(classes)

    class Sliced(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("index", index, persistent=False)

        def forward(self, x: Tensor) -> Tensor:
            return self.net(x)[:, self.index]

    return Classifier(Sliced(model.net), mean=tuple(model.mean.flatten().tolist()),
                      std=tuple(model.std.flatten().tolist()), num_classes=len(classes), input_size=model.input_size,
                      resize_size=model.resize_size, label_space="index", name=model.name)


def check_logits(model: Classifier, logits: Tensor) -> None:
    """Catch models that would silently weaken every attack or corrupt every number."""
    if not torch.isfinite(logits).all():
        raise HacError(f"model {model.name!r} produced NaN or inf logits; check its weights and input range ([0, 1])")
    if logits.shape[-1] != model.num_classes:
        raise HacError(f"model {model.name!r} returned {logits.shape[-1]} logits, expected {model.num_classes}")
    sums_to_one = torch.allclose(logits.sum(-1), torch.ones(len(logits)), atol=1e-3)
    if logits.shape[0] > 1 and (logits >= 0).all() and sums_to_one:
        raise HacError(f"model {model.name!r} returns probabilities (rows sum to 1); return logits: softmax "
                       f"outputs weaken gradient attacks")


def describe_normalization(model: Classifier) -> str:
    """Where and how the model normalizes its [0, 1] inputs, for the report."""
    norm = next((m for m in model.modules() if isinstance(m, Normalize)), None)
    source = norm if norm is not None else model
    mean, std = source.mean.flatten().tolist(), source.std.flatten().tolist()
    if norm is None and mean == [0.0, 0.0, 0.0] and std == [1.0, 1.0, 1.0]:
        return "the model's own, inside it (it takes pixels in [0, 1])"
    return (f"inside the model: mean {', '.join(f'{v:.4g}' for v in mean)}, std {', '.join(f'{v:.4g}' for v in std)}"
            f" (it takes pixels in [0, 1])")
