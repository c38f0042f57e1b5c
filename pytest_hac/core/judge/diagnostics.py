"""What the engine measured while a cell ran, for :mod:`.soundness`: typed, a dict only in JSON.

An attacked cell's :class:`Diagnostics` (:mod:`..engine.probes` measures them); a worst cell's names its parts.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class LargeEpsProbe:
    """The cell's attack at a large eps (:data:`..engine.probes.PROBE_EPS`) on the first ``n`` images: ``correct``
    survived, per image the worst case over the gradient paths; ``paths``: survivors per path (adaptive)."""

    eps: float
    correct: int
    n: int
    paths: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"eps": self.eps, "correct": self.correct, "n": self.n}
        if self.paths is not None:
            out["paths"] = dict(self.paths)
        return out


@dataclass(frozen=True)
class ZeroGradient:
    """Images whose input gradient is all zero or not finite on every gradient path of the cell; ``paths``: the
    same count on each path (cells that follow several: one masked path is a finding even where another works)."""

    images: int
    of: int
    paths: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"images": self.images, "of": self.of}
        if self.paths is not None:
            out["paths"] = dict(self.paths)
        return out


@dataclass(frozen=True)
class StandIn:
    """How well a codec's differentiable stand-in computes the codec's function, on the first ``n`` clean images
    through ``rounds`` rounds: per image, the RMS distance of ``approximate``'s image from the decoded one relative
    to the decoded image's distance from the input (``distance``: the median, ``worst``: the largest), and the
    images whose predicted class differs between the two (``disagree``)."""

    distance: float
    worst: float
    disagree: int
    n: int
    rounds: int

    def to_dict(self) -> dict[str, Any]:
        return {"distance": self.distance, "worst": self.worst, "disagree": self.disagree, "n": self.n,
                "rounds": self.rounds}


@dataclass(frozen=True)
class MoreSteps:
    """The cell rerun at ``steps`` (twice its own): per image, correct or not."""

    steps: int
    correct: tuple[bool, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "correct": list(self.correct)}


@dataclass(frozen=True)
class Diagnostics:
    """Measurements of one cell; a field is None when it was not measured.

    Attributes:
        restarts: per restart, the images none of its sets (one per gradient path) broke; under the cascade a
            later set attacks only the survivors of the earlier ones, so n minus a count is what it broke first.
        paths: per gradient path, the images none of its restarts broke (as ``restarts``), for cells that
            follow several.
        zero_gradient: see :class:`ZeroGradient` (gradient attacks).
        large_eps: the attack at a large eps through the defense (white-box and adaptive cells).
        undefended_large_eps: the attack at a large eps against the bare model (eps-bounded gradient attacks).
        steps_2x: the cell at twice the steps (``soundness="thorough"``).
        stand_in: the codec's stand-in against its decoded images (cells whose attack follows the stand-in).
        eot_samples: on a codec that declares itself random, the decodes each attack gradient averaged (EOT; 0
            where no attack followed the codec); every image is evaluated on one seeded decode.
        cells: a worst cell's parts.
    """

    restarts: tuple[int, ...] | None = None
    paths: dict[str, int] | None = None
    zero_gradient: ZeroGradient | None = None
    large_eps: LargeEpsProbe | None = None
    undefended_large_eps: LargeEpsProbe | None = None
    steps_2x: MoreSteps | None = None
    stand_in: StandIn | None = None
    eot_samples: int | None = None
    cells: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: measured fields only."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = value.to_dict() if hasattr(value, "to_dict") else \
                dict(value) if isinstance(value, dict) else value if isinstance(value, int) else list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Diagnostics:
        data = data or {}

        def probe(key: str) -> LargeEpsProbe | None:
            p = data.get(key)
            return None if p is None else LargeEpsProbe(p["eps"], p["correct"], p["n"], p.get("paths"))

        z, more, stand = data.get("zero_gradient"), data.get("steps_2x"), data.get("stand_in")
        return cls(
            restarts=None if data.get("restarts") is None else tuple(data["restarts"]),
            paths=data.get("paths"),
            zero_gradient=None if z is None else ZeroGradient(z["images"], z["of"], z.get("paths")),
            large_eps=probe("large_eps"),
            undefended_large_eps=probe("undefended_large_eps"),
            steps_2x=None if more is None else MoreSteps(more["steps"], tuple(more["correct"])),
            stand_in=None if stand is None else StandIn(**stand),
            eot_samples=data.get("eot_samples"),
            cells=None if data.get("cells") is None else tuple(data["cells"]),
        )
