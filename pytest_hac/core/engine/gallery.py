"""The pictures of the HTML page's gallery: a few images, taken from tensors the engine already computed.

Nothing is recomputed for the gallery. While the engine classifies a chunk of images
(:meth:`~.engine.Engine.outcome`), it hands the chunk's tensors to :meth:`Gallery.take`: the
source images (clean or adversarial), what the defense decoded, the predictions, bpp and
PSNR. The gallery keeps, of the few images it shows, small JPEG thumbnails and those
numbers; everything else passes by. Memory is bounded by ``count`` x the cells x a few
kilobytes. An outcome read back from ``--hac-cache`` (no tensors computed this session) and the
soundness probes' own images show nothing.

What a cell shows is linked by the engine (:meth:`Gallery.link`): the (source, defense)
pairs the cell evaluated. With restarts, each image shows the first restart the pipeline
gets wrong (else the first), as :func:`~.outcome.worst_of` counts it.

:meth:`Gallery.to_dict` is JSON (thumbnails in base64): it travels from xdist workers to the
controller and is what :mod:`pytest_hac.report.html` renders.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ...data import Dataset
from ..cells.defense import Defense
from .keys import CleanKey, SourceKey

#: The longest side of a thumbnail, in pixels: keeps the page a few MB at most.
THUMBNAIL = 128
#: JPEG quality of the thumbnails (the page shows them; nothing is measured on them).
THUMBNAIL_QUALITY = 85
#: A perturbation is shown magnified so that its largest change spans half the grey range.
SHOWN_SPAN = 0.5


def choose(n: int, count: int, seed: int) -> tuple[int, ...]:
    """``count`` image indices of ``n``, drawn by ``seed`` (the same images every run with that seed)."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(sorted(torch.randperm(n, generator=generator)[:count].tolist()))


def class_names(model: Any, dataset: Dataset) -> Callable[[int], str]:
    """A class index's name: ImageNet's categories, a digit, a class folder's name, else ``class N``."""
    if getattr(model, "label_space", None) == "imagenet" and getattr(model, "num_classes", 0) == 1000:
        from torchvision.models import ResNet50_Weights

        categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
        return lambda i: categories[i]
    if dataset.label_space == "digits":
        return str
    folders = {label: name for name, label in dataset.label_map.items()}
    return lambda i: folders.get(i, f"class {i}")


def thumbnail(image: Tensor) -> str:
    """A float [0, 1] CHW image as a base64 JPEG, its longest side at most :data:`THUMBNAIL` px."""
    from PIL import Image

    image = image.detach().float().clamp(0, 1)
    side = max(image.shape[-2:])
    if side > THUMBNAIL:
        size = [max(1, round(s * THUMBNAIL / side)) for s in image.shape[-2:]]
        image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    pixels = image.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class Gallery:
    """Thumbnails and numbers of ``count`` images (chosen by ``seed``), per (source, defense) the engine ran.

    Args:
        dataset: the evaluation images (their clean pixels, labels and ids).
        count: how many images to show (0: none, and :meth:`take` does nothing).
        seed: chooses the images.
        names: a class index's name (see :func:`class_names`).
    """

    def __init__(self, dataset: Dataset, count: int, seed: int, names: Callable[[int], str] = str) -> None:
        self.dataset = dataset
        self.indices = choose(len(dataset), count, seed) if count > 0 else ()
        self.names = names
        self._shots: dict[tuple[SourceKey, Defense], dict[int, dict[str, Any]]] = {}
        self._links: dict[str, list[tuple[SourceKey, Defense]]] = {}

    def take(self, source: SourceKey, defense: Defense, start: int, pixels: Tensor, decoded: Tensor,
             predicted: Tensor, bpp: Tensor | None, psnr: Tensor | None) -> None:
        """Keep what images ``start:start + len(pixels)`` of ``source`` through ``defense`` show, for the chosen few.

        ``pixels`` are the source images (clean or adversarial), ``decoded`` what the defense made of them.
        """
        key = (source, defense)
        adversarial = not isinstance(source, CleanKey)
        for i in self.indices:
            j = i - start
            if not 0 <= j < len(pixels) or i in self._shots.get(key, {}):
                continue
            label, pred = int(self.dataset.labels[i]), int(predicted[j])
            shot: dict[str, Any] = {"predicted": pred, "predicted_name": self.names(pred), "correct": pred == label,
                                    "bpp": None if bpp is None else float(bpp[j]),
                                    "psnr": None if psnr is None else float(psnr[j]),
                                    "decoded": None if adversarial or bpp is None else thumbnail(decoded[j])}
            if adversarial:
                delta = pixels[j].float() - self.dataset.pixels(i, i + 1)[0]
                gain = SHOWN_SPAN / max(float(delta.abs().max()), 1e-8)
                shot |= {"source": thumbnail(pixels[j]), "perturbation": thumbnail(delta * gain + 0.5),
                         "magnified": gain, "linf": float(delta.abs().max()) * 255}
            self._shots.setdefault(key, {})[i] = shot

    def link(self, case_id: str, sources: list[SourceKey], defense: Defense) -> None:
        """Cell ``case_id`` evaluated ``sources`` (one per restart) through ``defense``."""
        if self.indices:
            self._links[case_id] = [(source, defense) for source in sources]

    def shots(self, case_id: str) -> dict[int, dict[str, Any]]:
        """Per image index, what the cell shows: the first restart the pipeline gets wrong, else the first."""
        chosen: dict[int, dict[str, Any]] = {}
        for key in self._links.get(case_id, []):
            for i, shot in self._shots.get(key, {}).items():
                if i not in chosen or (chosen[i]["correct"] and not shot["correct"]):
                    chosen[i] = shot
        return chosen

    def to_dict(self, case_ids: list[str] | None = None) -> dict[str, Any]:
        """JSON: the images (id, label, clean thumbnail) and, per cell, its shots by image index."""
        cells = {c: {str(i): s for i, s in self.shots(c).items()} for c in (case_ids or list(self._links))}
        cells = {c: s for c, s in cells.items() if s}
        images = {}
        if cells:
            for i in self.indices:
                label = int(self.dataset.labels[i])
                images[str(i)] = {"id": self.dataset.ids[i], "label": label, "label_name": self.names(label),
                                  "clean": thumbnail(self.dataset.pixels(i, i + 1)[0])}
        return {"images": images, "cells": cells}


def combine(into: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Add a gallery dict (one xdist worker's cell) to ``into``; returns ``into``."""
    into.setdefault("images", {}).update(part.get("images", {}))
    into.setdefault("cells", {}).update(part.get("cells", {}))
    return into
