"""``--hac-batch-size=auto`` on CPU: the batch the model's activations allow, not a constant.

Small models on small images waste most of a small batch on per-call overhead (measured: a ResNet-20 on
500 images of 32 px ran 1.4x faster at 256 than at 16). :func:`cpu_batch` measures the bytes of every
layer's output for one image, allows an attack's forward and backward about three times that, and takes
the largest power of two whose activations fit the budget, capped at :data:`CPU_CAP`. CUDA keeps its own
start (large) and halves on out-of-memory.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CPU_CAP", "CPU_FLOOR", "activation_bytes", "cpu_batch"]

#: Past this the gain is nil and progress is coarse.
CPU_CAP = 1024
#: The former constant: a model that fits no more keeps it (the budget is a guide, not a wall, on CPU).
CPU_FLOOR = 16
#: An attack keeps each layer's output for the backward pass and its gradient: about 3x the forward.
ATTACK_FACTOR = 3


def activation_bytes(model: nn.Module, image: Tensor) -> int:
    """Bytes of every leaf module's output for one image (one forward pass, no gradient)."""
    total = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, Tensor):
            total += output.numel() * output.element_size()

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(image[None])
    finally:
        for hook in hooks:
            hook.remove()
    return max(total, image.numel() * image.element_size())


def cpu_batch(model: nn.Module, image: Tensor, n: int, budget_bytes: int) -> int:
    """The largest power of two (at least :data:`CPU_FLOOR`, at most :data:`CPU_CAP` and ``n``) that fits.

    A model whose activations cannot be measured (TorchScript modules take no hooks) keeps the floor.
    """
    try:
        per_image = ATTACK_FACTOR * activation_bytes(model, image)
    except RuntimeError:
        return max(1, min(CPU_FLOOR, n))
    fits = max(1, budget_bytes // per_image)
    batch = CPU_FLOOR
    while batch * 2 <= min(fits, CPU_CAP):
        batch *= 2
    return max(1, min(batch, n))
