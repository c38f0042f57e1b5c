"""HiFiC's entropy coding: CompressAI's rANS coder driven by the port's densities.

The hyper-latents go through an ``EntropyBottleneck`` that evaluates the port's own
factorized density (:class:`.model.HyperlatentDensity`), the latents through a
``GaussianConditional`` (or its logistic twin for ``hific_med``) around the predicted means.
CompressAI is imported on first use: importing it costs seconds.
"""
from __future__ import annotations

import copy
import functools
import math
from typing import Any

import torch
from torch import Tensor

from .model import SCALE_BOUND, HiFiCModel, HyperlatentDensity

TAIL_MASS = 1e-9  # probability mass left to the escape code outside the rANS tables


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
