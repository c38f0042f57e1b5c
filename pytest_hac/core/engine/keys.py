"""Typed keys of the engine's store: what each reusable tensor is, without string parsing.

Every key is a small frozen dataclass with a canonical tuple form (:meth:`parts`): the
seed of the work it names is derived from it, and the disk cache hashes it with each
codec replaced by its weights' fingerprint (:func:`content`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...attacks import AttackSpec


@dataclass(frozen=True)
class CodecRef:
    """A codec at a quality; on disk it stands for the codec's weights too."""

    name: str
    quality: int | None


@dataclass(frozen=True)
class CleanKey:
    """The clean images of the data set."""

    def parts(self) -> tuple:
        return ("clean",)


@dataclass(frozen=True)
class AdvKey:
    """Restart ``restart`` of the attack ``spec`` (run once: its ``restarts`` is 1) on the first ``n`` images.

    ``until_broken``: a probe's question, "does this attack break the image": an attack that can stops on an
    image once the pipeline it checks gets the image wrong (:meth:`.passes.Passes.attack`); its images are not
    the full attack's, so it has its own disk address (its random starts are the full attack's).
    ``path`` is "bare" (the undefended model: oblivious cells, the undefended probe),
    "approximate" (white-box), "bpda", "bpda-identity" or "bpda-first" (adaptive: one attack each) or "real"
    (query); ``codec`` and ``rounds`` say which defense the attacker sees (None and 1 for "bare").
    """

    path: str
    codec: CodecRef | None
    rounds: int
    n: int
    spec: AttackSpec
    restart: int = 0
    until_broken: bool = False

    @property
    def attack(self) -> str:
        return self.spec.name

    @property
    def run(self) -> str:
        """The attack with every parameter and the restart, as text (seeds and disk addresses use it)."""
        return self.spec.key + (f",restart={self.restart}" if self.restart else "")

    def parts(self) -> tuple:
        stop = ("until-broken",) if self.until_broken else ()
        if self.path == "bare":
            return ("adv", "bare", self.n, self.run, *stop)
        return ("adv", self.path, self.codec, self.rounds, self.n, self.run, *stop)


@dataclass(frozen=True)
class RoundKey:
    """Round ``round`` of a real codec over the images stored under ``source``."""

    source: CleanKey | AdvKey
    codec: CodecRef
    round: int

    def parts(self) -> tuple:
        return ("codec", self.source.parts(), self.codec, self.round)


@dataclass(frozen=True)
class OutcomeKey:
    """Per-image outcomes of ``source`` after ``rounds`` of ``codec`` (None: undefended)."""

    source: CleanKey | AdvKey
    codec: CodecRef | None
    rounds: int
    amp: bool

    def parts(self) -> tuple:
        return ("outcome", self.source.parts(), self.codec, self.rounds, self.amp)


@dataclass(frozen=True)
class NormKey:
    """Per image, the L2 norm of an attack's perturbation (minimum-norm attacks report its median)."""

    source: AdvKey

    def parts(self) -> tuple:
        return ("l2", self.source.parts())


@dataclass(frozen=True)
class Chunk:
    """Images ``start:stop`` of the tensor ``key`` names: what the store holds of adversarial sets and codec
    rounds, so memory is bounded by the chunk, not the data set."""

    key: AdvKey | RoundKey
    start: int
    stop: int

    def parts(self) -> tuple:
        return self.key.parts() + (("images", self.start, self.stop),)


@dataclass(frozen=True)
class GradientKey:
    """Per image of the first ``n``: is the input gradient of the attack loss zero or not finite (through ``path``)?"""

    path: str
    codec: CodecRef | None
    rounds: int
    n: int

    def parts(self) -> tuple:
        if self.path == "bare":
            return ("zerograd", "bare", self.n)
        return ("zerograd", self.path, self.codec, self.rounds, self.n)


@dataclass(frozen=True)
class StandInKey:
    """Per image of the first ``n`` clean images: the codec's stand-in against its decoded image over ``rounds``."""

    codec: CodecRef
    rounds: int
    n: int

    def parts(self) -> tuple:
        return ("stand-in", self.codec, self.rounds, self.n)


SourceKey = CleanKey | AdvKey
Key = CleanKey | AdvKey | RoundKey | OutcomeKey | NormKey | GradientKey | StandInKey | Chunk


def content(key: Key, codec_fingerprint: Callable[[CodecRef], str]) -> tuple:
    """``key``'s parts for hashing, each codec replaced by (name, quality, fingerprint of its weights)."""

    def swap(part: object) -> object:
        if isinstance(part, CodecRef):
            return (part.name, part.quality, codec_fingerprint(part))
        if isinstance(part, tuple):
            return tuple(swap(p) for p in part)
        return part

    return swap(key.parts())


def model_free(key: Key) -> bool:
    """Codec rounds of the clean images do not depend on the model: models sharing the data share them."""
    if isinstance(key, Chunk):
        key = key.key
    return isinstance(key, RoundKey) and isinstance(key.source, CleanKey)
