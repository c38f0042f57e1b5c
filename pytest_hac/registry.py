"""The three registries (models, codecs, attacks), their typed metadata and ``register_*``.

Modelled on ``torchvision.models.register_model``/``get_model`` and ``compressai.registry``:
entries register through a decorator or a call, unknown names fail with the list of valid
ones. Built-in entries register through the same door users take; each registry imports
its built-ins module on first use, so this module imports nothing heavy and nothing of
pytest-hac's but :mod:`pytest_hac.errors`.

This module is what the ``pytest_hac_register(registry, config)`` hook receives.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import HacError, unknown_name

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741  (the info type)

NORMS = ("Linf", "L2")


@dataclass(frozen=True)
class ModelInfo:
    """What is known about a registered model without loading it.

    Attributes:
        input_size: side of the square centre crop the model takes.
        resize_size: shorter side photos are resized to before the crop.
        label_space: "imagenet" (1000 ImageNet-1k classes), "digits", or "index".
    """

    input_size: int = 224
    resize_size: int = 256
    label_space: str = "imagenet"


@dataclass(frozen=True)
class CodecInfo:
    """What is known about a registered codec without building it.

    Attributes:
        qualities: the valid quality levels (None for a codec without one).
        stand_in: its ``approximate`` is a differentiable stand-in; False: it has none, ``approximate`` is the
            straight-through real round trip (BPDA with the identity backward), as reports say per informed cell.

    Whether a codec is random (then EOT is allowed) is the codec's own ``stochastic``
    attribute: a property of its implementation, read when it is built.
    """

    qualities: tuple[int, ...] | None = None
    stand_in: bool = True


@dataclass(frozen=True)
class AttackInfo:
    """What an attack takes, so that a parameter it would ignore is refused instead.

    Attributes:
        norm: its default norm; ``norms`` lists all it supports.
        steps: its default number of steps (queries, for gradient-free attacks).
        takes_steps: whether ``steps`` changes it (fgsm is one step by definition).
        gradient_free: it only queries the model (its steps are queries).
        random_start: it starts at a random point, so restarts differ (the engine runs them).
        takes_alpha: it has a step size ``alpha`` (apgd adapts its own).
        takes_eot: it can average gradients over a random defense (EOT).
        min_norm: a minimum-norm attack: no eps, it finds the smallest perturbation it can.
        per_image_seeds: it draws its random start per image from the seeds the engine sets on its
            ``image_seeds`` attribute before each batch (one per image), so an image's result does not
            depend on its batch; without it the engine seeds torch's RNG per batch only, and on CPU
            keeps such an attack's batches at the first batch size (results stay those recorded).
        per_image: its result on an image does not depend on the other images of its batch (no batch-wide
            random draw, loss or early stop), so the engine may attack a subset: an attacked cell's later
            gradient paths and restarts attack only the images every earlier one left correct (the cascade).
        best_iterate: it returns a best iterate for every image (lowest loss or margin), not the
            clean image where it did not fool the model it attacked: needed when that model is not
            the evaluated pipeline (oblivious and white-box cells). A declaration only: nothing checks
            or reads it yet.

    The capabilities default to False, as for any attack a user registers.
    """

    norm: str = "Linf"
    norms: tuple[str, ...] = ()
    steps: int = 10
    takes_steps: bool = True
    gradient_free: bool = False
    random_start: bool = False
    takes_alpha: bool = False
    takes_eot: bool = False
    min_norm: bool = False
    per_image_seeds: bool = False
    per_image: bool = False
    best_iterate: bool = False

    def __post_init__(self) -> None:
        norms = self.norms or (self.norm,)
        if self.norm not in norms or any(n not in NORMS for n in norms):
            raise HacError(f"attack norms must be among {NORMS} and include the default {self.norm!r}; got {norms}")
        object.__setattr__(self, "norms", tuple(norms))


@dataclass(frozen=True)
class Entry(Generic[T, I]):
    """One registered name: its factory, its typed metadata and the description ``--hac-list`` shows."""

    name: str
    factory: Callable[..., T]
    info: I
    description: str = ""


class Registry(Generic[T, I]):
    """Maps names to factories for one ``kind`` of thing ("model", "codec", "attack").

    Args:
        kind: what the entries are, for messages.
        builtins: the module that registers the built-in entries, imported on first use.
    """

    def __init__(self, kind: str, builtins: str | None = None) -> None:
        self.kind = kind
        self._builtins = builtins
        self._entries: dict[str, Entry[T, I]] = {}
        self._aliases: dict[str, str] = {}

    def _load(self) -> None:
        if self._builtins is not None:
            module, self._builtins = self._builtins, None  # before importing: it registers through us
            importlib.import_module(module)

    def register(self, name: str, factory: Callable[..., T] | None = None, *, info: I, description: str = "",
                 aliases: Sequence[str] = (), replace: bool = False):
        """Register ``factory`` under ``name``; usable as a decorator when ``factory`` is None."""
        self._load()

        def add(fn: Callable[..., T]) -> Callable[..., T]:
            if not replace and name in self._entries:
                raise HacError(f"{self.kind} {name!r} is already registered; pass replace=True to override it")
            self._entries[name] = Entry(name, fn, info, description)
            for alias in aliases:
                self._aliases[alias] = name
            return fn

        return add(factory) if factory is not None else add

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases (case-insensitive)."""
        self._load()
        key = str(name).strip()
        for candidate in (key, key.lower()):
            if candidate in self._entries:
                return candidate
            if candidate in self._aliases:
                return self._aliases[candidate]
        raise unknown_name(self.kind, str(name), list(self._entries) + list(self._aliases))

    def entry(self, name: str) -> Entry[T, I]:
        return self._entries[self.canonical(name)]

    def info(self, name: str) -> I:
        """The typed metadata of ``name`` (or an alias)."""
        return self.entry(name).info

    def __contains__(self, name: object) -> bool:
        try:
            self.canonical(str(name))
        except HacError:
            return False
        return True

    def __iter__(self) -> Iterator[Entry[T, I]]:
        self._load()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def snapshot(self) -> Callable[[], None]:
        """A function that puts the entries back as they are now (built-ins loaded first, so they stay)."""
        self._load()
        entries, aliases = dict(self._entries), dict(self._aliases)

        def restore() -> None:
            self._entries, self._aliases = dict(entries), dict(aliases)

        return restore


MODELS: Registry[Any, ModelInfo] = Registry("model", builtins="pytest_hac.models.builtin")
CODECS: Registry[Any, CodecInfo] = Registry("codec", builtins="pytest_hac.codecs.builtin")
ATTACKS: Registry[Any, AttackInfo] = Registry("attack", builtins="pytest_hac.attacks.builtin")


def snapshot() -> Callable[[], None]:
    """A function that undoes every registration made after this call.

    A pytest session restores it when it ends, so the hook registrations of one in-process run
    (pytester, an IDE) do not leak into the next.
    """
    restores = [registry.snapshot() for registry in (MODELS, CODECS, ATTACKS)]

    def restore() -> None:
        for undo in restores:
            undo()

    return restore


def register_model(name: str, factory: Callable[[], Any] | None = None, *, input_size: int = 224,
                   resize_size: int = 256, label_space: str = "imagenet", description: str = "",
                   aliases: Sequence[str] = (), replace: bool = False):
    """Register ``factory() -> nn.Module``: a :class:`~pytest_hac.models.Classifier` or a module that takes
    float RGB in [0, 1], NCHW, at ``input_size`` and returns logits."""
    return MODELS.register(name, factory, info=ModelInfo(input_size, resize_size, label_space),
                           description=description, aliases=aliases, replace=replace)


def register_codec(name: str, factory: Callable[..., Any] | None = None, *, qualities: Sequence[int] | None = None,
                   description: str = "", aliases: Sequence[str] = (), replace: bool = False, stand_in: bool = True):
    """Register ``factory(quality, *, weights_dir, offline) -> Codec`` (a factory may ignore both keywords
    with ``**_``). ``qualities`` lists the valid quality levels (None for codecs without one); ``stand_in=False``
    declares that its ``approximate`` is no differentiable stand-in (see :class:`CodecInfo`)."""
    info = CodecInfo(None if qualities is None else tuple(qualities), stand_in)
    return CODECS.register(name, factory, info=info, description=description, aliases=aliases, replace=replace)


def register_attack(name: str, factory: Callable[..., Any] | None = None, *, norm: str = "Linf", steps: int = 10,
                    gradient_free: bool = False, description: str = "", aliases: Sequence[str] = (),
                    replace: bool = False, norms: Sequence[str] = (), takes_steps: bool = True,
                    random_start: bool = False, takes_alpha: bool = False, takes_eot: bool = False,
                    min_norm: bool = False, per_image_seeds: bool = False, per_image: bool = False,
                    best_iterate: bool = False):
    """Register ``factory(model, spec) -> attack``; the attack is called as ``attack(images, labels)``.

    The keyword arguments declare what the attack takes (see :class:`AttackInfo`); a
    marker parameter it does not take is refused at collection. The engine runs
    restarts itself (``random_start=True``), so the factory always sees ``restarts=1``;
    the attack should draw its randomness from torch's global RNG, which the engine seeds per batch
    (or, with ``per_image_seeds=True``, from the per-image seeds the engine sets on ``attack.image_seeds``).
    """
    info = AttackInfo(norm=norm, norms=tuple(norms), steps=steps, takes_steps=takes_steps,
                      gradient_free=gradient_free, random_start=random_start, takes_alpha=takes_alpha,
                      takes_eot=takes_eot, min_norm=min_norm, per_image_seeds=per_image_seeds,
                      per_image=per_image, best_iterate=best_iterate)
    return ATTACKS.register(name, factory, info=info, description=description, aliases=aliases, replace=replace)


def validate_quality(name: str, quality: int | None) -> int | None:
    """Check ``quality`` against the codec's range; returns it as an int (or None)."""
    entry = CODECS.entry(name)
    valid = entry.info.qualities
    if valid is None:
        if quality not in (None, 0):
            raise HacError(f"codec {entry.name!r} has no quality setting; use codecs={{'{entry.name}': [None]}}")
        return None
    if quality is None or isinstance(quality, bool) or int(quality) != quality or int(quality) not in valid:
        raise HacError(
            f"quality {quality!r} is out of range for codec {entry.name!r}: valid qualities are "
            f"{_describe(valid)}"
        )
    return int(quality)


def _describe(valid: Sequence[int]) -> str:
    if len(valid) > 5 and list(valid) == list(range(valid[0], valid[-1] + 1)):
        return f"{valid[0]}..{valid[-1]}"
    return ", ".join(map(str, valid))


def quality_text(name: str) -> str:
    """``qualities 1..100``, ``qualities 1, 2, 3`` or ``no quality``: how listings describe a codec's range."""
    valid = CODECS.info(name).qualities
    return "no quality" if valid is None else f"qualities {_describe(valid)}"
