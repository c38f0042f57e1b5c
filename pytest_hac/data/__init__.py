"""Labelled evaluation images: the embedded photos, scikit-learn's digits, or a folder of class folders.

Every data set is a fixed, recorded list of items (ids); a seeded subset of ``samples``
items is drawn from the list before anything is decoded, and only those are decoded,
in parallel threads, into 8-bit images.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import HacError
from .builtin import DIGITS_SIZE, DIGITS_TEST, digits, digits_split, embedded
from .dataset import Dataset
from .decode import default_workers, load_image
from .folders import IMAGE_SUFFIXES, load_folder
from .labels import imagenet_wnids

DATASETS = ("embedded", "digits")

__all__ = ["DATASETS", "DIGITS_SIZE", "DIGITS_TEST", "IMAGE_SUFFIXES", "Dataset", "default_workers", "digits_split",
           "imagenet_wnids", "load_dataset", "load_image"]


def load_dataset(spec: str, *, resize: int, crop: int, samples: int | None = None, seed: int = 0,
                 strict: bool = False, workers: int | None = None, labels: Path | None = None) -> Dataset:
    """Load ``embedded``, ``digits`` or an image folder, preprocessed for a model; ``samples`` images at most.

    Photos are resized (shorter side to ``resize``) and centre-cropped to ``crop``: the codec
    then sees exactly what the classifier sees, as in the paper. ``labels`` maps a folder's
    class names to the model's class indices (see :mod:`.labels`).
    """
    if samples is not None and samples < 1:
        raise HacError(f"--hac-samples must be at least 1; got {samples}")
    if spec in DATASETS and labels is not None:
        raise HacError(f"--hac-labels maps the class folders of an image folder; data set {spec!r} has its own labels")
    if spec == "digits":
        return digits(samples, seed)
    if spec == "embedded":
        return embedded(resize, crop, samples, seed, workers)
    path = Path(spec).expanduser()
    if not path.exists():
        import difflib

        close = difflib.get_close_matches(spec, DATASETS, n=1, cutoff=0.6) or _near_path(path)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise HacError(
            f"--hac-data={spec!r}: no such file or directory.{hint} Use 'embedded', 'digits', or a folder "
            f"with one sub-folder per class (e.g. imagenette2-320/val)"
        )
    return load_folder(path, resize=resize, crop=crop, samples=samples, seed=seed, strict=strict, workers=workers,
                       labels_file=labels)


def _near_path(path: Path) -> list[str]:
    """The existing path nearest to ``path`` (a typo in one of its folder names), as ``[str]``; else ``[]``."""
    import difflib

    parts = path.parts
    for depth in range(len(parts) - 1, 0, -1):
        parent = Path(*parts[:depth])
        if not parent.is_dir():
            continue
        try:
            names = [p.name for p in parent.iterdir()]
        except OSError:
            return []
        match = difflib.get_close_matches(parts[depth], names, n=1, cutoff=0.6)
        if not match:
            return []
        near = parent / match[0]
        rest = Path(*parts[depth + 1:]) if depth + 1 < len(parts) else None
        return [str(near / rest if rest is not None and (near / rest).exists() else near)]
    return []

