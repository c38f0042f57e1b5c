"""Classifiers under test: the contract (:class:`Classifier`), loading by name, the built-in entries.

A model takes float RGB in [0, 1], NCHW, at its ``input_size`` and returns logits;
normalization lives inside it. Built-ins register in :mod:`.builtin`; users register
theirs with :func:`pytest_hac.registry.register_model` or name a ``package.module:factory``.
"""
from __future__ import annotations

from .classifier import Classifier, Normalize, check_logits, describe_normalization, restrict
from .loading import get_model, model_info, validate_model_name

__all__ = ["Classifier", "Normalize", "check_logits", "describe_normalization", "get_model", "model_info", "restrict",
           "validate_model_name"]
