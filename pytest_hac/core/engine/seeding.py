"""Seeds: one per image for random starts, one per batch for everything else, all from ``--hac-seed``.

An image's random start is drawn from a seed of (seed, attack with restart, image id), so its
adversarial example does not depend on its batch, its chunk, the order cells run in or an
out-of-memory back-off. Each batch also runs inside ``torch.random.fork_rng`` with a seed of its
key and images, for randomness beyond the start (Square, AutoAttack's later parts, stochastic
codecs); the rest of the run sees the global RNG untouched.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ...data import Dataset
from .keys import AdvKey, Key


class Seeds:
    """The seeds of one engine: ``seed`` (``--hac-seed``) and the data set's image ids, on ``device``."""

    def __init__(self, seed: int, dataset: Dataset, device: torch.device) -> None:
        self.seed = seed
        self.dataset = dataset
        self.device = device

    def image_seeds(self, key: AdvKey, start: int, stop: int) -> list[int]:
        """One seed per image of ``start:stop`` from (seed, attack with restart, image id)."""
        return self.image_seeds_at(key, range(start, stop))

    def image_seeds_at(self, key: AdvKey, positions) -> list[int]:
        """One seed per image at ``positions`` (indices into the data set), as :meth:`image_seeds`."""
        ids = self.dataset.ids
        return [seed_of(f"{self.seed}|{key.run}|{key.path}|{key.codec}|{key.rounds}|{ids[i]}") for i in positions]

    @contextmanager
    def seeded(self, key: Key, start: int, stop: int) -> Iterator[None]:
        """Seed torch for one batch from (seed, ``key``, its images); the caller's RNG state comes back after."""
        devices = list(range(torch.cuda.device_count())) if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            seed = seed_of(f"{self.seed}|{key.parts()}|{start}:{stop}")
            torch.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.manual_seed_all(seed)
            yield


def seed_of(text: str) -> int:
    """A 32-bit seed from ``text`` (its SHA-256), the same on every platform and run."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
