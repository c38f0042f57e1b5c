"""The data sets that ship with pytest-hac's dependencies: the foolbox wheel's photos, scikit-learn's digits."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import HacError
from .dataset import Dataset, to_uint8
from .decode import decode_all
from .folders import UPSCALE_WARNING

DIGITS_SIZE = 32
#: The held-out share of scikit-learn's digits; the tiny models never train on it.
DIGITS_TEST = 500


def _package_dir(package: str, distribution: str, what: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise HacError(f"{what} come with the {distribution!r} package: pip install {distribution}")
    return Path(list(spec.submodule_search_locations)[0])


def foolbox_data_dir() -> Path:
    """The folder of sample photos inside the foolbox wheel."""
    return _package_dir("foolbox", "foolbox", "the embedded photos") / "data"


def digits_file() -> Path:
    """scikit-learn's copy of the digits, the file ``sklearn.datasets.load_digits`` reads: one row per scan,
    64 pixel values in 0..16, then the label."""
    return _package_dir("sklearn", "scikit-learn", "the digits") / "datasets" / "data" / "digits.csv.gz"


def digit_scans() -> tuple[Tensor, Tensor]:
    """All 1,797 8x8 scans as floats in [0, 1] (N, 1, 8, 8) and their labels, as ``load_digits`` gives them.

    Read from :func:`digits_file` directly: importing ``sklearn.datasets`` costs about a second (scipy, pandas).
    """
    path = digits_file()
    try:
        rows = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except (OSError, ValueError) as exc:
        raise HacError(f"cannot read scikit-learn's digits at {path} ({exc}); reinstall scikit-learn") from exc
    return torch.from_numpy(rows[:, :-1]).reshape(-1, 1, 8, 8).div(16.0), torch.from_numpy(rows[:, -1]).long()


def _draw(count: int, samples: int | None, seed: int, name: str) -> list[int]:
    """A seeded subset of ``samples`` of ``count`` items, in their order (all of them when None)."""
    if samples is not None and samples > count:
        raise HacError(f"--hac-samples={samples} is larger than data set {name!r}, which has {count} usable "
                       f"images; use --hac-samples={count} or fewer")
    if samples is None or samples == count:
        return list(range(count))
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:samples].sort().values.tolist()


def embedded(resize: int, crop: int, samples: int | None = None, seed: int = 0,
             workers: int | None = None) -> Dataset:
    """The 20 labelled ImageNet photos of the foolbox wheel (MIT), named ``imagenet_<index>_<label>.jpg``."""
    files = sorted(foolbox_data_dir().glob("imagenet_*.jpg"))
    if not files:
        raise HacError(f"no imagenet_*.jpg photos in {foolbox_data_dir()}; reinstall foolbox")
    every = [int(f.stem.split("_")[-1]) for f in files]
    files = [files[i] for i in _draw(len(files), samples, seed, "embedded")]
    decoded = decode_all(files, resize, crop, workers)
    broken = [f.name for f, d in zip(files, decoded) if d.pixels is None]
    if broken:
        raise HacError(f"embedded photos {broken} do not decode; reinstall foolbox")
    labels = [int(f.stem.split("_")[-1]) for f in files]
    sides = [d.shorter_side for d in decoded]
    return Dataset("embedded", torch.from_numpy(np.stack([d.pixels for d in decoded])), torch.tensor(labels),
                   tuple(f.name for f in files), "imagenet", class_labels=tuple(sorted(set(every))),
                   labels_rule="the photos' ImageNet-1k labels (foolbox file names)",
                   upscaled=sum(1 for s in sides if s * UPSCALE_WARNING < resize), source_size=min(sides))


def digits(samples: int | None = None, seed: int = 0) -> Dataset:
    """The held-out digits (8x8 scans upscaled to 32x32 RGB), stored as 8-bit images."""
    images, labels = digits_split("test")
    ids = tuple(f"digits-test-{i:03d}" for i in range(len(labels)))
    index = _draw(len(ids), samples, seed, "digits")
    return Dataset("digits", to_uint8(images[index]), labels[index], tuple(ids[i] for i in index), "digits",
                   class_labels=tuple(range(10)), labels_rule="scikit-learn's digit labels")


def digits_split(split: str) -> tuple[Tensor, Tensor]:
    """scikit-learn's handwritten digits as 32x32 RGB floats in [0, 1]; a fixed train/test split.

    The test split (``DIGITS_TEST`` images) is held out from training the tiny models.
    """
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    x, y = digit_scans()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(20250412))
    idx = order[-DIGITS_TEST:] if split == "test" else order[:-DIGITS_TEST]
    idx = idx.sort().values
    x = torch.nn.functional.interpolate(x[idx], size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    return x.clamp(0, 1).repeat(1, 3, 1, 1).contiguous(), y[idx]
