"""Decoding photos: any PIL-readable file to 8-bit RGB, resized and centre-cropped, in parallel threads."""
from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

#: Threads decoding at most; PIL releases the GIL while decoding and resizing, so threads scale.
MAX_WORKERS = 8


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers() -> int:
    """The machine's cores (those this process may use), at most :data:`MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, available_cores()))


@dataclass(frozen=True)
class Decoded:
    """One file: its 8-bit CHW pixels and the shorter side it had, or why it could not be read."""

    pixels: np.ndarray | None
    shorter_side: int = 0
    error: str | None = None


def load_image(path: Path, resize: int, crop: int) -> Tensor:
    """One image as uint8 (3, crop, crop): shorter side resized to ``resize``, then centre-cropped."""
    return torch.from_numpy(_decode(path, resize, crop)[0])


def _decode(path: Path, resize: int, crop: int) -> tuple[np.ndarray, int]:
    with Image.open(path) as img:
        img = _to_rgb(img)
        w, h = img.size
        scale = resize / min(w, h)
        size = (max(crop, round(w * scale)), max(crop, round(h * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
        img = img.crop((left, top, left + crop, top + crop))
        array = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(array.transpose(2, 0, 1)), min(w, h)


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


def _try(path: Path, resize: int, crop: int) -> Decoded:
    try:
        pixels, side = _decode(path, resize, crop)
    except Exception as exc:  # noqa: BLE001  PIL raises many kinds for corrupt files; all mean "unreadable"
        return Decoded(None, error=str(exc) or type(exc).__name__)
    return Decoded(pixels, side)


def decode_all(paths: Sequence[Path], resize: int, crop: int, workers: int | None = None) -> list[Decoded]:
    """Decode ``paths`` with ``workers`` threads (default: :func:`default_workers`), in order."""
    workers = default_workers() if workers is None else max(1, int(workers))
    if workers == 1 or len(paths) <= 1:
        return [_try(p, resize, crop) for p in paths]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hac-decode") as pool:
        return list(pool.map(lambda p: _try(p, resize, crop), paths))
