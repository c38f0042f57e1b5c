"""Straight-through rounding: ``torch.round`` in the forward pass, the identity in the backward pass; and
:func:`identity_backward`: any value forward, the identity backward.

CompressAI models round hard in eval mode, whose gradient is zero almost everywhere: a
white-box attack through such a forward pass would silently be no attack at all.
:func:`straight_through` makes a CompressAI network's forward pass differentiable without
changing a single value it computes.
"""
from __future__ import annotations

import types
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["identity_backward", "round_ste", "straight_through"]


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


class _IdentityBackward(torch.autograd.Function):
    """``value`` in the forward pass (exactly), the identity with respect to ``x`` in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, value: Tensor) -> Tensor:  # noqa: ARG004
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ARG004
        return grad, None


def identity_backward(x: Tensor, value: Tensor) -> Tensor:
    """``value`` bit for bit forward, the gradient passed to ``x`` unchanged (BPDA with the identity).

    ``x + (value - x).detach()`` is not ``value``: float rounding moves some pixels by an ulp.
    """
    return _IdentityBackward.apply(x, value.detach())


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
