"""A small name -> factory registry, one per concept (models, codecs, attacks).

Modelled on ``torchvision.models.register_model``/``get_model`` and
``compressai.registry``: entries register through a decorator or a call, and
unknown names fail with the list of valid ones.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import HacError, unknown_name

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: its factory plus metadata shown by ``--hac-list``."""

    name: str
    factory: Callable[..., T]
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Maps names to factories for one ``kind`` of thing ("model", "codec", ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self,
        name: str,
        factory: Callable[..., T] | None = None,
        *,
        description: str = "",
        aliases: tuple[str, ...] = (),
        replace: bool = False,
        **meta: Any,
    ):
        """Register ``factory`` under ``name``; usable as a decorator when ``factory`` is None."""

        def add(fn: Callable[..., T]) -> Callable[..., T]:
            if not replace and name in self._entries:
                raise HacError(f"{self.kind} {name!r} is already registered; pass replace=True to override it")
            self._entries[name] = Entry(name, fn, description, dict(meta))
            for alias in aliases:
                self._aliases[alias] = name
            return fn

        return add(factory) if factory is not None else add

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases (case-insensitive)."""
        key = name.strip()
        for candidate in (key, key.lower()):
            if candidate in self._entries:
                return candidate
            if candidate in self._aliases:
                return self._aliases[candidate]
        raise unknown_name(self.kind, name, list(self._entries) + list(self._aliases))

    def entry(self, name: str) -> Entry[T]:
        return self._entries[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        try:
            self.canonical(str(name))
        except HacError:
            return False
        return True

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return sorted(self._entries)
