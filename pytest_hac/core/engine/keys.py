"""Typed keys of the engine's store: what each reusable tensor is, without string parsing.

Every key is a small frozen dataclass with a canonical tuple form (:meth:`parts`): the
seed of the work it names is derived from it, and the disk cache hashes it with each
codec replaced by its weights' fingerprint (:func:`content`).

The images that reach a case's defense: the clean ones, or one adversarial set per gradient path and restart.

Pure functions of the case and the number of images: the plan, the evaluation and the
soundness probes name the same sets with the same keys (:mod:`.keys`).

Disk addresses of store keys: the key plus the model, data, seed, device and codec weights it stands for.

A key (:mod:`.keys`) names a computation; its address names its result, so a disk cache shared
across sessions (``--hac-cache``) never hands a result computed with other weights, other
images or a user's attack registered under a built-in name.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

import torch

from ...attacks import AttackSpec
from ...codecs import Codec
from ...data import Dataset
from ...io.cache import Store, codec_fingerprint, data_fingerprint, model_fingerprint
from ...models import Classifier
from ...registry import ATTACKS
from ..cells.cases import Case
from ..cells.defense import IDENTITY, Defense, gradient_paths


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
    """Per image of ``start:n``: is the input gradient of the attack loss zero or not finite (through ``path``)?"""

    path: str
    codec: CodecRef | None
    rounds: int
    n: int
    start: int = 0

    def parts(self) -> tuple:
        images = (self.n,) if not self.start else (self.start, self.n)  # a prefix keeps its cache address
        if self.path == "bare":
            return ("zerograd", "bare", *images)
        return ("zerograd", self.path, self.codec, self.rounds, *images)


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


def gradient_key(path: str, defense: Defense, n: int, start: int = 0) -> GradientKey:
    """The key of the input gradients at the clean images ``start:n`` through ``path`` (of ``defense``)."""
    return GradientKey(path, *coded(seen_by(path, defense)), n, start)


def seen_by(path: str, defense: Defense) -> Defense:
    """The defense an attacker on ``path`` differentiates through: none on the bare model."""
    return IDENTITY if path == "bare" else defense


def coded(defense: Defense) -> tuple[CodecRef | None, int]:
    """``defense`` as keys hold it: its codec and rounds, or (None, 1) for the identity."""
    return (None, 1) if defense.codec == "identity" else (CodecRef(defense.codec, defense.quality), defense.rounds)


def defense_of(key: AdvKey) -> Defense:
    """The defense an adversarial set's attack saw; the identity for the bare model."""
    return IDENTITY if key.codec is None else Defense(key.codec.name, key.codec.quality, key.rounds)


class Addresses:
    """``address(key)``: the disk address of a store key, or None when ``store`` has no disk layer.

    Fingerprints are computed on first use, once (a model's or codec's weights, the data's pixels).
    ``codec(name, quality)`` gives the codec a fingerprint is taken of.
    """

    def __init__(self, store: Store, model: Classifier, dataset: Dataset, seed: int, device: torch.device,
                 codec: Callable[[str, int | None], Codec]) -> None:
        self.store = store
        self.model = model
        self.dataset = dataset
        self.seed = seed
        self.device = device
        self.codec = codec
        self._codec_fingerprints: dict[CodecRef, str] = {}

    def __call__(self, key: Key) -> str | None:
        """The disk address of a store key: the key plus the model, data, seed and codec weights it stands for."""
        disk = self.store.disk
        if disk is None:
            return None
        parts = content(key, self._codec_fingerprint)
        base = key.key if isinstance(key, Chunk) else key
        attack = base if isinstance(base, AdvKey) else getattr(base, "source", None)
        if isinstance(attack, AdvKey):  # a user's attack registered under a built-in name is another attack
            parts += (factory_id(ATTACKS.entry(attack.attack).factory),)
        owner = None if model_free(key) else (self._model_fingerprint, self.seed)
        return disk.address(parts, owner, self._data_fingerprint, self.device.type)

    def _codec_fingerprint(self, ref: CodecRef) -> str:
        if ref not in self._codec_fingerprints:
            self._codec_fingerprints[ref] = codec_fingerprint(self.codec(ref.name, ref.quality))
        return self._codec_fingerprints[ref]

    @cached_property
    def _model_fingerprint(self) -> str:
        return model_fingerprint(self.model)

    @cached_property
    def _data_fingerprint(self) -> str:
        return data_fingerprint(self.dataset.ids, self.dataset.images, self.dataset.labels)


def factory_id(factory: object) -> str:
    """The qualified name of an attack's factory (part of an adversarial key's address)."""
    return f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', type(factory).__qualname__)}"
