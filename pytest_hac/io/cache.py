"""Where reusable tensors live: a memory LRU (:class:`Store`) over an optional disk cache.

The disk cache (:class:`DiskCache`, ``--hac-cache``) is content-addressed and
shared across sessions.

A disk entry's address is a sha256 over everything its value depends on: the model's
weights and buffers, the images and labels, the engine's key (attack and its
parameters, codec with quality and weights, round), the seed, the device type, the
versions of the packages that change numbers and a hash of pytest-hac's own
engine, attack and codec source. A changed model, data subset or code version
therefore finds nothing instead of a stale entry; nothing is invalidated by hand.

Layout: ``<cache dir>/hac-v1/<2 hex>/<62 hex>.pt``, written atomically
(:func:`~pytest_hac.io.files.atomic_write`) so concurrent xdist workers and interrupted runs never
leave a half-written entry under a real name.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from .files import atomic_write

#: Packages whose version changes adversarial examples or codec outputs.
VERSIONED = ("pytest-hac", "torch", "torchattacks", "compressai", "kornia", "pillow")
#: Our namespace inside the cache dir: clearing removes only this, never the user's files.
NAMESPACE = "hac-v1"


def package_versions(packages: Iterable[str] = VERSIONED) -> dict[str, str]:
    """Installed versions of ``packages`` (missing packages are left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def source_fingerprint() -> str:
    """A hash of pytest-hac's own code that produces numbers (engine, attacks, codecs).

    An editable install changes code without changing its version number.
    """
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(p for pattern in ("core/*.py", "attacks/*.py", "codecs/**/*.py") for p in root.glob(pattern)):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _hash_tensors(h: "hashlib._Hash", named: Iterable[tuple[str, Tensor]]) -> None:
    for name, t in named:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        # reshape(-1): a 0-dim tensor cannot be viewed as bytes
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def model_fingerprint(model: nn.Module) -> str:
    """A hash of everything that changes the model's outputs.

    Parameters and *all* buffers (non-persistent ones such as normalization
    constants and class restrictions too, which a state dict leaves out).
    """
    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}|{getattr(model, 'name', '')}".encode())
    _hash_tensors(h, sorted(model.named_parameters()))
    _hash_tensors(h, sorted(model.named_buffers()))
    for name, module in sorted(model.named_modules()):  # e.g. restrict()'s wrapper has no weights of its own
        h.update(f"{name}:{type(module).__qualname__}".encode())
    return h.hexdigest()


def data_fingerprint(ids: Iterable[str], images: Tensor, labels: Tensor) -> str:
    """A hash of the subset: its ids, the preprocessed pixels and the labels (attacks use labels)."""
    h = hashlib.sha256("\n".join(ids).encode())
    _hash_tensors(h, [("images", images), ("labels", labels)])
    return h.hexdigest()


def codec_fingerprint(codec: object) -> str:
    """Class, quality and the weights of any networks the codec holds (learned codecs)."""
    cls = type(codec)
    h = hashlib.sha256(f"{cls.__module__}.{cls.__qualname__}|{getattr(codec, 'quality', None)}".encode())
    for attr, value in sorted(vars(codec).items()):
        if isinstance(value, nn.Module):
            h.update(attr.encode())
            _hash_tensors(h, sorted(value.state_dict().items()))
    return h.hexdigest()


class DiskCache:
    """Tuples of tensors on disk under content addresses.

    Args:
        root: the cache directory (created on first write).
        versions: versions mixed into every address (default: the installed packages'
            and a hash of pytest-hac's own source).
    """

    def __init__(self, root: str | os.PathLike, *, versions: Mapping[str, str] | None = None) -> None:
        self.root = Path(root)
        if versions is None:
            versions = {**package_versions(), "pytest-hac-source": source_fingerprint()}
        self.versions = dict(versions)
        self._salt = repr(sorted(self.versions.items()))
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self.corrupt = 0

    @property
    def folder(self) -> Path:
        return self.root / NAMESPACE

    def address(self, *parts: object) -> str:
        """The sha256 address of ``parts`` (their ``repr``) under this cache's versions."""
        return hashlib.sha256(repr((self._salt, parts)).encode()).hexdigest()

    def _path(self, address: str) -> Path:
        return self.folder / address[:2] / f"{address[2:]}.pt"

    def get(self, address: str) -> tuple[Tensor, ...] | None:
        """The entry at ``address``, or None when absent or unreadable (then it is recomputed)."""
        path = self._path(address)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            value = tuple(payload["value"])
            if payload.get("address") != address or not all(isinstance(t, Tensor) for t in value):
                raise ValueError("not a pytest-hac cache entry")
        except Exception:  # truncated, foreign or tampered file: treat as absent, the put overwrites it
            self.corrupt += 1
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, address: str, value: tuple[Tensor, ...], label: str = "") -> None:
        """Write ``value`` atomically; a full or read-only disk only costs the reuse."""
        path = self._path(address)
        payload = {"address": address, "label": label, "value": [t.detach().cpu().contiguous() for t in value]}
        try:
            atomic_write(path, lambda fh: torch.save(payload, fh))
        except OSError as exc:
            import warnings

            warnings.warn(f"pytest-hac: could not write to cache {self.root}: {exc}", stacklevel=2)
            return
        self.writes += 1

    def remove(self, address: str) -> None:
        """Delete the entry at ``address`` if there is one."""
        self._path(address).unlink(missing_ok=True)

    def clear(self) -> int:
        """Remove every entry (only pytest-hac's own folder inside ``root``); returns how many."""
        if not self.folder.is_dir():
            return 0
        count = sum(1 for _ in self.folder.glob("*/*.pt"))
        shutil.rmtree(self.folder, ignore_errors=True)
        return count

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*/*.pt")) if self.folder.is_dir() else 0


class Store:
    """A byte-bounded LRU of tensor tuples over two disk layers: what memory cannot hold is never lost.

    * ``disk`` (``--hac-cache``): content-addressed and shared across sessions; a
      ``put`` with an address writes through, a memory miss reads it back.
    * a session scratch folder: an entry evicted from memory that has no disk address is
      spilled there and read back on the next ``get``, so nothing is recomputed because
      memory filled up. ``discard`` drops an entry no later work needs (memory and scratch);
      :meth:`close` removes the folder.
    """

    def __init__(self, max_bytes: int = 2 << 30, disk: DiskCache | None = None, *, spill: bool = True) -> None:
        self.max_bytes = max_bytes
        self.disk = disk
        self.spill = spill
        self._items: OrderedDict[object, tuple[Tensor, ...]] = OrderedDict()
        self._addresses: dict[object, str | None] = {}
        self._scratch: DiskCache | None = None
        self._spilled: set[object] = set()
        self.nbytes = 0
        self.hits = 0
        self.disk_hits = 0
        self.misses = 0
        self.spills = 0

    def get(self, key: object, address: str | None = None) -> tuple[Tensor, ...] | None:
        """The value under ``key`` from memory, else from disk at ``address``, else from scratch, else None."""
        value = self._items.get(key)
        if value is not None:
            self.hits += 1
            self._items.move_to_end(key)
            return value
        if address is not None and self.disk is not None:
            value = self.disk.get(address)
        if value is None and key in self._spilled:
            value = self._scratch.get(_scratch_address(key))
        if value is not None:
            self.disk_hits += 1
            self._remember(key, value, address)
            return value
        self.misses += 1
        return None

    def put(self, key: object, value: tuple[Tensor, ...], address: str | None = None) -> None:
        """Keep ``value`` in memory (spilling the least recently used) and on disk at ``address``."""
        self._remember(key, value, address)
        if address is not None and self.disk is not None:
            self.disk.put(address, value, label=repr(key))

    def discard(self, key: object) -> None:
        """Forget ``key`` (memory and scratch; the cross-session disk keeps its copy)."""
        value = self._items.pop(key, None)
        if value is not None:
            self.nbytes -= _nbytes(value)
        self._addresses.pop(key, None)
        if key in self._spilled:
            self._spilled.discard(key)
            self._scratch.remove(_scratch_address(key))

    def keys(self) -> list[object]:
        """Every key held in memory or spilled to scratch."""
        return list(self._items) + [k for k in self._spilled if k not in self._items]

    def close(self) -> None:
        """Forget every entry and remove the scratch folder (the cross-session disk keeps its copies)."""
        self._items.clear()
        self._addresses.clear()
        self.nbytes = 0
        if self._scratch is not None:
            self._removal()
            self._scratch, self._spilled = None, set()

    def __contains__(self, key: object) -> bool:
        return key in self._items or key in self._spilled

    def _remember(self, key: object, value: tuple[Tensor, ...], address: str | None) -> None:
        if key in self._items:
            self.nbytes -= _nbytes(self._items.pop(key))
        self._items[key] = value
        self._addresses[key] = address
        self.nbytes += _nbytes(value)
        while self.nbytes > self.max_bytes and len(self._items) > 1:
            old_key, old = self._items.popitem(last=False)
            self.nbytes -= _nbytes(old)
            on_disk = self._addresses.pop(old_key, None) is not None and self.disk is not None
            if self.spill and not on_disk and old_key not in self._spilled:
                self._spill(old_key, old)

    def _spill(self, key: object, value: tuple[Tensor, ...]) -> None:
        if self._scratch is None:
            import tempfile

            self._scratch = DiskCache(tempfile.mkdtemp(prefix="hac-scratch-"), versions={})
            # A store nobody closes (plain Python, a crashed run) still removes its folder when it is
            # collected or the interpreter exits.
            self._removal = weakref.finalize(self, shutil.rmtree, self._scratch.root, True)
        self._scratch.put(_scratch_address(key), value, label=repr(key))
        self._spilled.add(key)
        self.spills += 1


def _scratch_address(key: object) -> str:
    return hashlib.sha256(repr(key).encode()).hexdigest()


def _nbytes(value: tuple[Tensor, ...]) -> int:
    return sum(t.nbytes for t in value)
