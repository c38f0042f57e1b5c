"""Image folders (one sub-folder per class): list the files, draw the subset, decode only it."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import HacError
from .dataset import Dataset
from .decode import decode_all
from .labels import map_classes

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff", ".gif"}
#: An image enlarged more than this to reach the model's resize size is upscaled: worth a warning.
UPSCALE_WARNING = 2.0


@dataclass(frozen=True)
class Listing:
    """The sorted class folders and every image file in them (class, file name), in sorted order."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[tuple[str, str], ...]

    def rel(self, i: int) -> str:
        cls, name = self.files[i]
        return f"{cls}/{name}"


def scan(path: Path) -> Listing:
    """List ``path``'s class folders and their image files without opening any image.

    Hidden files (macOS ``._x.jpg`` resource forks) and other suffixes are not images of a class.
    """
    if not path.is_dir():
        raise HacError(f"--hac-data={str(path)!r} is a file; give a folder with one sub-folder per class")
    with os.scandir(path) as entries:
        classes = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    if not classes:
        loose = [f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        what = (f"holds {len(loose)} image(s) directly but no class folders; move them into one sub-folder per "
                f"class" if loose else "is empty or has no class folders")
        raise HacError(
            f"--hac-data={str(path)!r} {what}: expected e.g. val/n01440764/*.JPEG (ImageNet WordNet ids), "
            f"val/0/*.png (class indices) or val/airplane/*.png (names, in sorted order)"
        )
    files = []
    for cls in classes:
        with os.scandir(path / cls) as entries:
            names = sorted(e.name for e in entries if e.is_file() and not e.name.startswith(".")
                           and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)
        files += [(cls, name) for name in names]
    return Listing(path, tuple(classes), tuple(files))


def load_folder(path: Path, *, resize: int, crop: int, samples: int | None = None, seed: int = 0,
                strict: bool = False, workers: int | None = None, labels_file: Path | None = None) -> Dataset:
    """The subset of ``samples`` images drawn from the folder's file list with ``seed``, decoded in parallel.

    Only the drawn files are decoded. An unreadable file is skipped (an error with ``strict``)
    and replaced by the next file of the same seeded order, so the subset holds ``samples``
    readable images whenever the folder has that many.
    """
    listing = scan(path)
    mapping = map_classes(list(listing.classes), labels_file)
    total = len(listing.files)
    if total == 0:
        raise HacError(f"no readable images under {str(path)!r} (looked for {', '.join(sorted(IMAGE_SUFFIXES))} in "
                       f"the class folders); put images in the class folders")
    if samples is not None and samples > total:
        raise HacError(f"--hac-samples={samples} is larger than data set {path.name!r}, which has {total} image "
                       f"files; use --hac-samples={total} or fewer")
    order = (torch.randperm(total, generator=torch.Generator().manual_seed(seed)).tolist()
             if samples is not None and samples < total else list(range(total)))
    want = total if samples is None else samples
    kept: dict[int, tuple[np.ndarray, int]] = {}
    skipped: list[str] = []
    position = 0
    while len(kept) < want and position < total:
        wave = order[position:position + (want - len(kept))]
        position += len(wave)
        for i, got in zip(wave, decode_all([path / listing.rel(i) for i in wave], resize, crop, workers)):
            if got.pixels is not None:
                kept[i] = (got.pixels, got.shorter_side)
                continue
            if strict:
                raise HacError(f"unreadable image {listing.rel(i)} in {str(path)!r} ({got.error}); remove it or drop "
                               f"--hac-strictness=strict")
            warnings.warn(f"pytest-hac: skipping unreadable image {listing.rel(i)}: {got.error}", stacklevel=2)
            skipped.append(listing.rel(i))
    if not kept:
        raise HacError(f"no readable images under {str(path)!r} (all {len(skipped)} image files are unreadable); "
                       f"put images in the class folders")
    if samples is not None and len(kept) < want:
        raise HacError(f"--hac-samples={samples} is larger than data set {path.name!r}, which has {len(kept)} usable "
                       f"images; use --hac-samples={len(kept)} or fewer")
    chosen = sorted(kept)  # folder order, as before any subset: reports list images the same way
    sides = [kept[i][1] for i in chosen]
    return Dataset(
        name=path.name,
        images=torch.from_numpy(np.stack([kept[i][0] for i in chosen])),
        labels=torch.tensor([mapping.labels[listing.files[i][0]] for i in chosen]),
        ids=tuple(listing.rel(i) for i in chosen),
        label_space=mapping.space,
        class_labels=tuple(sorted(set(mapping.labels.values()))),
        labels_rule=mapping.rule,
        label_map=dict(mapping.labels),
        skipped=tuple(skipped),
        upscaled=sum(1 for s in sides if s * UPSCALE_WARNING < resize),
        source_size=min(sides),
    )
