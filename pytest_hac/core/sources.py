"""The images that reach a case's defense: the clean ones, or one adversarial set per gradient path and restart.

Pure functions of the case and the number of images: the plan, the evaluation and the
soundness probes name the same sets with the same keys (:mod:`.keys`).
"""
from __future__ import annotations

from dataclasses import replace

from ..attacks import AttackSpec
from .cases import Case
from .defended import gradient_paths
from .defense import Defense
from .keys import AdvKey, CleanKey, CodecRef, SourceKey


def source_keys(case: Case, n: int, *, steps: int | None = None) -> list[SourceKey]:
    """The images that reach the defense: the clean ones, or one adversarial set per gradient path
    (:func:`~.defended.gradient_paths`: several for adaptive cells) and restart, each on ``n`` images."""
    if not case.threat.attacked or case.attack is None:
        return [CleanKey()]
    spec = case.attack if steps is None else replace(case.attack, steps=steps)
    return [adversarial_key(path, case.codec, case.quality, case.rounds, spec, n, restart=i)
            for path in gradient_paths(case.threat, case.codec, case.rounds) for i in range(spec.restarts)]


def adversarial_key(path: str, codec: str, quality: int | None, rounds: int, spec: AttackSpec, n: int, *,
                    restart: int = 0) -> AdvKey:
    """The key of restart ``restart`` of ``spec`` through ``path`` on the first ``n`` images.

    Restart 0 is the attack with ``restarts=1``: more restarts only add sets.
    """
    once = replace(spec, restarts=1)
    ref, rounds = (None, 1) if path == "bare" else (CodecRef(codec, quality), rounds)
    return AdvKey(path, ref, rounds, n, once, restart)


def defense_of(key: AdvKey) -> Defense:
    """The defense an adversarial set's attack saw: (codec, quality, rounds); the identity for the bare model."""
    return Defense("identity", None, 1) if key.codec is None else Defense(key.codec.name, key.codec.quality,
                                                                         key.rounds)
