"""The images that reach a case's defense: the clean ones, or one adversarial set per gradient path and restart.

Pure functions of the case and the number of images: the plan, the evaluation and the
soundness probes name the same sets with the same keys (:mod:`.keys`).
"""
from __future__ import annotations

from dataclasses import replace

from ...attacks import AttackSpec
from ..cells.cases import Case
from ..cells.defense import IDENTITY, Defense, gradient_paths
from .keys import AdvKey, CleanKey, CodecRef, GradientKey, SourceKey


def source_keys(case: Case, n: int, *, steps: int | None = None) -> list[SourceKey]:
    """The images that reach the defense: the clean ones, or one adversarial set per gradient path
    (:func:`~.targets.gradient_paths`: several for adaptive cells) and restart, each on ``n`` images."""
    if not case.threat.attacked or case.attack is None:
        return [CleanKey()]
    spec = case.attack if steps is None else replace(case.attack, steps=steps)
    return [adversarial_key(path, case.defense, spec, n, restart=i)
            for path in gradient_paths(case.threat, case.codec, case.rounds) for i in range(spec.restarts)]


def adversarial_key(path: str, defense: Defense, spec: AttackSpec, n: int, *, restart: int = 0,
                    until_broken: bool = False) -> AdvKey:
    """The key of restart ``restart`` of ``spec`` through ``path`` (of ``defense``) on the first ``n`` images
    (``until_broken``: a probe that stops attacking an image once it is broken, :class:`~.keys.AdvKey`).

    Restart 0 is the attack with ``restarts=1``: more restarts only add sets.
    """
    return AdvKey(path, *coded(seen_by(path, defense)), n, replace(spec, restarts=1), restart, until_broken)


def gradient_key(path: str, defense: Defense, n: int) -> GradientKey:
    """The key of the input gradients at the first ``n`` clean images through ``path`` (of ``defense``)."""
    return GradientKey(path, *coded(seen_by(path, defense)), n)


def seen_by(path: str, defense: Defense) -> Defense:
    """The defense an attacker on ``path`` differentiates through: none on the bare model."""
    return IDENTITY if path == "bare" else defense


def coded(defense: Defense) -> tuple[CodecRef | None, int]:
    """``defense`` as keys hold it: its codec and rounds, or (None, 1) for the identity."""
    return (None, 1) if defense.codec == "identity" else (CodecRef(defense.codec, defense.quality), defense.rounds)


def defense_of(key: AdvKey) -> Defense:
    """The defense an adversarial set's attack saw; the identity for the bare model."""
    return IDENTITY if key.codec is None else Defense(key.codec.name, key.codec.quality, key.rounds)
