"""Disk addresses of store keys: the key plus the model, data, seed, device and codec weights it stands for.

A key (:mod:`.keys`) names a computation; its address names its result, so a disk cache shared
across sessions (``--hac-cache``) never hands a result computed with other weights, other
images or a user's attack registered under a built-in name.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import torch

from ...codecs import Codec
from ...data import Dataset
from ...io.cache import Store, codec_fingerprint, data_fingerprint, model_fingerprint
from ...models import Classifier
from ...registry import ATTACKS
from .keys import AdvKey, Chunk, CodecRef, Key, content, model_free


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
