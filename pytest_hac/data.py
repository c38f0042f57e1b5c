"""Labelled evaluation images: the embedded photos, scikit-learn's digits, or an ImageFolder.

Every dataset is a fixed, recorded list of items (ids) so a report can be
reproduced; ``subset`` draws a deterministic share of them from a seed.
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .errors import HacError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff", ".gif"}
DATASETS = ("embedded", "digits")
DIGITS_SIZE = 32
#: The held-out share of scikit-learn's digits; the tiny models never train on it.
DIGITS_TEST = 500


@dataclass(frozen=True)
class Dataset:
    """Images as float NCHW in [0, 1] with integer labels in ``label_space``."""

    name: str
    images: Tensor
    labels: Tensor
    ids: tuple[str, ...]
    label_space: str  # "imagenet", "digits" or "index" (folder names are class indices)
    skipped: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, samples: int | None, seed: int) -> "Dataset":
        """A deterministic subset of ``samples`` items chosen by ``seed`` (all items when None)."""
        if samples is None or samples == len(self):
            return self
        if samples < 1:
            raise HacError(f"--hac-samples must be at least 1; got {samples}")
        if samples > len(self):
            raise HacError(
                f"--hac-samples={samples} is larger than data set {self.name!r}, which has {len(self)} "
                f"usable images; use --hac-samples={len(self)} or fewer"
            )
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=gen)[:samples].sort().values
        return replace(self, images=self.images[idx], labels=self.labels[idx], ids=tuple(self.ids[i] for i in idx))


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in class-index order."""
    return tuple((Path(__file__).with_name("imagenet_wnids.txt")).read_text().split())


def load_dataset(
    spec: str, *, resize: int, crop: int, strict: bool = False
) -> Dataset:
    """Load ``embedded``, ``digits`` or an ImageFolder path, preprocessed for a model.

    Photos are resized (shorter side to ``resize``) and centre-cropped to
    ``crop``: the codec then sees exactly what the classifier sees, as in the paper.
    """
    if spec == "embedded":
        return _embedded(resize, crop)
    if spec == "digits":
        images, labels = digits_split("test")
        ids = tuple(f"digits-test-{i:03d}" for i in range(len(labels)))
        return Dataset("digits", images, labels, ids, "digits")
    path = Path(spec).expanduser()
    if not path.exists():
        import difflib

        close = difflib.get_close_matches(spec, DATASETS, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise HacError(
            f"--hac-data={spec!r}: no such file or directory.{hint} Use 'embedded', 'digits', or a folder "
            f"with one sub-folder per class (e.g. imagenette2-320/val)"
        )
    return image_folder(path, resize=resize, crop=crop, strict=strict)


def foolbox_data_dir() -> Path:
    """The folder of sample photos inside the foolbox wheel, found without importing foolbox."""
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        raise HacError("the embedded photos come with the 'foolbox' package: pip install foolbox")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _embedded(resize: int, crop: int) -> Dataset:
    files = sorted(foolbox_data_dir().glob("imagenet_*.jpg"))
    if not files:
        raise HacError(f"no imagenet_*.jpg photos in {foolbox_data_dir()}; reinstall foolbox")
    images = torch.stack([load_image(f, resize, crop) for f in files])
    # foolbox names them imagenet_<index>_<label>.jpg
    labels = torch.tensor([int(f.stem.split("_")[-1]) for f in files])
    return Dataset("embedded", images, labels, tuple(f.name for f in files), "imagenet")


def load_image(path: Path, resize: int, crop: int) -> Tensor:
    """Open any PIL-readable image as RGB (grayscale, RGBA, CMYK converted), resize and centre-crop."""
    with Image.open(path) as img:
        img = _to_rgb(img)
        w, h = img.size
        scale = resize / min(w, h)
        size = (max(crop, round(w * scale)), max(crop, round(h * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
        img = img.crop((left, top, left + crop, top + crop))
        array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255)


def _to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode. PIL's own ``convert`` clips 16-bit and float greyscale to 0..255
    (a 16-bit PNG turns white, a float TIFF in [0, 1] black), so those are rescaled first."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        array = np.asarray(img, dtype=np.float64)
        if img.mode == "F":
            top = 1.0 if array.size and np.nanmax(array) <= 1.0 else 255.0
        else:
            top = 65535.0 if img.mode.startswith("I;16") or (array.size and array.max() > 255) else 255.0
        array = np.nan_to_num(array / top * 255.0).clip(0, 255).round().astype(np.uint8)
        img = Image.fromarray(array, mode="L")
    return img.convert("RGB")


def image_folder(path: Path, *, resize: int, crop: int, strict: bool = False) -> Dataset:
    """An ImageFolder (one sub-folder per class). WordNet-id folders map to ImageNet indices."""
    if not path.is_dir():
        raise HacError(f"--hac-data={str(path)!r} is a file; give a folder with one sub-folder per class")
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        loose = [f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        what = (f"holds {len(loose)} image(s) directly but no class folders; move them into one sub-folder per "
                f"class" if loose else "is empty or has no class folders")
        raise HacError(
            f"--hac-data={str(path)!r} {what}: expected e.g. val/n01440764/*.JPEG "
            f"(ImageNet WordNet ids) or val/0/*.png (class indices)"
        )
    wnids = {w: i for i, w in enumerate(imagenet_wnids())}
    if all(c in wnids for c in classes):
        space, index = "imagenet", {c: wnids[c] for c in classes}
    elif all(c.isdigit() for c in classes):
        space, index = "index", {c: int(c) for c in classes}
    else:
        odd = [c for c in classes if c not in wnids and not c.isdigit()][:3]
        raise HacError(
            f"cannot map class folders {odd} in {str(path)!r} to labels: name class folders by ImageNet "
            f"WordNet id (n01440764, as Imagenette does) or by class index (0, 1, ...)"
        )
    images, labels, ids, skipped = [], [], [], []
    for cls in classes:
        for f in sorted((path / cls).iterdir()):
            # Hidden files (macOS "._x.jpg" resource forks) and folders are not images of the class.
            if f.suffix.lower() not in IMAGE_SUFFIXES or f.name.startswith(".") or not f.is_file():
                continue
            try:
                images.append(load_image(f, resize, crop))
            except Exception as exc:  # noqa: BLE001  PIL raises many kinds for corrupt files; all mean "unreadable"
                rel = f"{cls}/{f.name}"
                if strict:
                    raise HacError(f"unreadable image {rel} in {str(path)!r} ({exc}); remove it or drop --hac-strict") from exc
                warnings.warn(f"pytest-hac: skipping unreadable image {rel}: {exc}", stacklevel=2)
                skipped.append(rel)
                continue
            labels.append(index[cls])
            ids.append(f"{cls}/{f.name}")
    if not images:
        why = f"all {len(skipped)} image files are unreadable" if skipped else \
            f"looked for {', '.join(sorted(IMAGE_SUFFIXES))} in the class folders"
        raise HacError(f"no readable images under {str(path)!r} ({why}); put images in the class folders")
    return Dataset(path.name, torch.stack(images), torch.tensor(labels), tuple(ids), space, tuple(skipped))


def digits_split(split: str) -> tuple[Tensor, Tensor]:
    """scikit-learn's handwritten digits as 32x32 RGB in [0, 1]; a fixed train/test split.

    The test split (``DIGITS_TEST`` images) is held out from training the tiny models.
    """
    from sklearn.datasets import load_digits

    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    bunch = load_digits()
    x = torch.from_numpy(bunch.images).float().div(16.0).unsqueeze(1)
    y = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(20250412))
    idx = order[-DIGITS_TEST:] if split == "test" else order[:-DIGITS_TEST]
    idx = idx.sort().values
    x = torch.nn.functional.interpolate(x[idx], size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    return x.clamp(0, 1).repeat(1, 3, 1, 1).contiguous(), y[idx]
