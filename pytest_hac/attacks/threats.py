"""The threat models: where the attacker stands, as one typed table.

A threat is a :class:`Threat` member; its entry says everything the rest of the package asks of it
(help text, the paper's name, aliases, the gradient paths its attack follows, whether the attacker is
informed of the defense, whether it only queries). Report order is the order of the entries. Names a
user writes become members once, in :meth:`Threat.of`; everywhere else compares members.

Adding a threat: one entry here, plus its gradient path in :mod:`pytest_hac.core.engine.targets` if it
needs a new one.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..errors import HacError, unknown_name


@dataclass(frozen=True)
class ThreatInfo:
    """What a threat is.

    Attributes:
        help: one line for ``--hac-list`` and the docs.
        paths: the gradient paths its attack follows (:data:`pytest_hac.core.engine.targets.MODES` and
            ``"bare"``), one attack each, the per-image worst case kept; empty: no attack of its own. In
            the cascade's order (:meth:`pytest_hac.core.engine.chunks.Outcomes.cascade`): by reuse, then strength
            (the white-box attack first: another cell needs it on every image).
        informed: the attacker differentiates through the defense (white-box, adaptive).
        queries: a gradient-free attack against the real defended pipeline (Square for gradient attacks).
        combines: the per-image worst case of a defense's other cells (no attack of its own).
        paper: the paper's name for it, if it has one.
        aliases: other names a user may write.
    """

    help: str
    paths: tuple[str, ...] = ()
    informed: bool = False
    queries: bool = False
    combines: bool = False
    paper: str | None = None
    aliases: tuple[str, ...] = ()


class Threat(StrEnum):
    """A threat model; compares equal to its name, so reports and JSON carry the name."""

    CLEAN = "clean", ThreatInfo("no attack; accuracy through the defense", aliases=("none",))
    OBLIVIOUS = "oblivious", ThreatInfo("attack the bare model, defend afterwards (paper: black-box)",
                                        paths=("bare",), paper="black-box", aliases=("black-box", "blackbox"))
    WHITEBOX = "whitebox", ThreatInfo("gradients through the defense's differentiable approximation (paper: white-box)",
                                      paths=("approximate",), informed=True, paper="white-box",
                                      aliases=("white-box",))
    ADAPTIVE = "adaptive", ThreatInfo("BPDA (approximation/identity backward paths) and white-box, per-image worst; "
                                      "EOT", paths=("approximate", "bpda", "bpda-identity", "bpda-first"),
                                      informed=True, aliases=("bpda",))
    QUERY = "query", ThreatInfo("gradient-free attack (square) against the real defended pipeline", paths=("real",),
                                queries=True, aliases=("gradient-free",))
    WORST = "worst", ThreatInfo("per image, wrong under any threat and attack of the defense (robust accuracy)",
                                combines=True)

    def __new__(cls, name: str, info: ThreatInfo) -> Threat:
        member = str.__new__(cls, name)
        member._value_ = name
        member.info = info
        return member

    def __repr__(self) -> str:  # messages quote threats as users write them: 'clean'
        return repr(self.value)

    @property
    def attacked(self) -> bool:
        """It runs an attack of its own."""
        return bool(self.info.paths)

    @property
    def rank(self) -> int:
        """Its place in reports."""
        return list(Threat).index(self)

    @classmethod
    def of(cls, name: str | Threat) -> Threat:
        """``name`` or one of its aliases as a member; unknown names list the valid ones."""
        if isinstance(name, Threat):
            return name
        key = str(name).strip().lower()
        for threat in cls:
            if key == threat.value or key in threat.info.aliases:
                return threat
        raise unknown_name("threat", name, [t.value for t in cls] + [a for t in cls for a in t.info.aliases])


def rank(name: str) -> int:
    """Report order of a threat name (unknown names last, as a report from a newer version may hold)."""
    try:
        return Threat.of(name).rank
    except HacError:  # an unknown name sorts last rather than failing a report
        return len(Threat)
