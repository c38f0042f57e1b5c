"""A labelled evaluation set: 8-bit images (as decoded), labels, ids, and how they were made."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import Tensor


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 NCHW (decoded photos are 8-bit: 4x smaller than float), integer labels.

    Attributes:
        name: how reports call it.
        images: uint8 (N, 3, H, W); :meth:`pixels` gives float [0, 1] for a range of images.
        labels: int64 (N,), in ``label_space``.
        ids: one stable id per image (a file's path inside the data folder); the report records them.
        label_space: "imagenet" (ImageNet-1k indices), "digits", "index" (class indices of the model),
            or "folder-order" (sorted folder names -> 0..N-1, torchvision's ImageFolder convention).
        class_labels: the label of every class of the whole data set (before any subset), sorted.
        labels_rule: how folder names became labels, in words (the report records it).
        label_map: folder name -> label, for the report (empty for built-in data).
        skipped: ids of unreadable files met while drawing the subset.
        upscaled: how many images were enlarged more than 2x to reach the model's resize size.
        source_size: the shorter side of the smallest original image.
    """

    name: str
    images: Tensor
    labels: Tensor
    ids: tuple[str, ...]
    label_space: str
    class_labels: tuple[int, ...] = ()
    labels_rule: str = ""
    label_map: dict[str, int] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    upscaled: int = 0
    source_size: int | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def pixels(self, start: int = 0, stop: int | None = None) -> Tensor:
        """Images ``start:stop`` as float in [0, 1] (converted per call: only a batch at a time is float)."""
        return self.images[start:stop].float().div(255)

    @cached_property
    def content_hashes(self) -> tuple[str, ...]:
        """Per image, a hash of its pixels and label: data identity is content, not a folder's name.

        Computed once per data set: the report and every baseline comparison read it."""
        import hashlib

        return tuple(hashlib.sha256(img.contiguous().numpy().tobytes() + str(int(y)).encode()).hexdigest()[:16]
                     for img, y in zip(self.images, self.labels))


def to_uint8(images: Tensor) -> Tensor:
    """Float images in [0, 1] as 8-bit, as an image file would hold them."""
    return images.clamp(0, 1).mul(255).round().to(torch.uint8)
