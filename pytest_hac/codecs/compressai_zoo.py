"""The CompressAI zoo: one table from name to model (:data:`ZOO_MODELS`), its checkpoints and their loading.

The table is hard-coded so that registering the zoo's names does not import CompressAI;
a test checks it against ``compressai.zoo``. Checkpoints come from ``--hac-weights-dir``,
then torch.hub's cache, then CompressAI's URL (never with ``offline``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightsNotFound
from ..io.checkpoints import hub_checkpoint_dir, load_state_dict
from .compressai_codec import CompressAICodec

__all__ = ["ZOO_MODELS", "ZooModel", "load_zoo", "zoo_checkpoint", "zoo_factory"]


@dataclass(frozen=True)
class ZooModel:
    """One CompressAI zoo image model: its zoo function, URL-table key and valid qualities."""

    function: str
    architecture: str
    qualities: tuple[int, ...]
    description: str


_Q8, _Q6 = tuple(range(1, 9)), tuple(range(1, 7))

#: Hard-coded so registering does not import CompressAI; a test checks them against compressai.zoo.
ZOO_MODELS: dict[str, ZooModel] = {
    "bmshj2018-factorized": ZooModel(
        "bmshj2018_factorized", "bmshj2018-factorized", _Q8,
        "CompressAI zoo: Balle et al. 2018 factorized prior (MSE)"),
    "bmshj2018-factorized-relu": ZooModel(
        "bmshj2018_factorized_relu", "bmshj2018-factorized", _Q8,
        "CompressAI zoo: factorized prior with ReLU; CompressAI 1.2.8 has no ReLU checkpoints and "
        "its loader returns the GDN factorized-prior weights (same as bmshj2018-factorized)"),
    "bmshj2018-hyperprior": ZooModel(
        "bmshj2018_hyperprior", "bmshj2018-hyperprior", _Q8,
        "CompressAI zoo: Balle et al. 2018 scale hyperprior (MSE)"),
    "mbt2018-mean": ZooModel(
        "mbt2018_mean", "mbt2018-mean", _Q8, "CompressAI zoo: Minnen et al. 2018 mean-scale hyperprior (MSE)"),
    "mbt2018": ZooModel(
        "mbt2018", "mbt2018", _Q8,
        "CompressAI zoo: Minnen et al. 2018 joint autoregressive + hyperprior (MSE; slow serial decoding)"),
    "cheng2020-anchor": ZooModel(
        "cheng2020_anchor", "cheng2020-anchor", _Q6, "CompressAI zoo: Cheng et al. 2020 anchor (MSE)"),
    "cheng2020-attn": ZooModel(
        "cheng2020_attn", "cheng2020-attn", _Q6, "CompressAI zoo: Cheng et al. 2020 with attention (MSE)"),
}


def zoo_checkpoint(name: str, quality: int) -> tuple[str, str]:
    """(file name, URL) of a zoo model's MSE checkpoint, from CompressAI's own URL table."""
    from compressai.zoo.image import model_urls

    url = model_urls[ZOO_MODELS[name].architecture]["mse"][quality]
    return url.rsplit("/", 1)[-1], url


def load_zoo(name: str, quality: int, *, weights_dir: Path | None = None, offline: bool = False) -> CompressAICodec:
    """A CompressAI zoo model at ``quality`` with its pretrained MSE weights.

    The same pipeline as ``compressai.zoo.<fn>(quality, metric="mse", pretrained=True)``
    (CompressAI's URL table, torch.hub's cache under ``TORCH_HOME``, CompressAI's key
    conversion and ``from_state_dict``), except that the file is loaded with
    ``weights_only=True`` and checked (CompressAI's loader unpickles it unchecked).
    ``weights_dir`` is searched first; with ``offline`` nothing is downloaded.
    """
    from compressai.zoo.image import model_architectures
    from compressai.zoo.pretrained import load_pretrained

    path = _zoo_file(name, quality, weights_dir, offline)
    state = load_pretrained(load_state_dict(path, what=f"CompressAI checkpoint for {name} quality {quality}"))
    arch = model_architectures[ZOO_MODELS[name].architecture]
    try:
        net = arch.from_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise WeightsNotFound(
            f"{path} does not fit CompressAI's {arch.__name__} ({type(exc).__name__}: {exc}); is it the "
            f"checkpoint for another model or quality? Delete it and download {zoo_checkpoint(name, quality)[1]}"
        ) from exc
    return CompressAICodec(net, name=name, quality=quality)


def _zoo_file(name: str, quality: int, weights_dir: Path | None, offline: bool) -> Path:
    filename, url = zoo_checkpoint(name, quality)
    if weights_dir is not None and (Path(weights_dir) / filename).is_file():
        return Path(weights_dir) / filename
    folder = hub_checkpoint_dir()
    path = folder / filename
    if path.is_file():
        return path
    where = f"{folder}" + (f" or {weights_dir}" if weights_dir is not None else "")
    fix = (f"download {url} and place it in {folder} (torch.hub's cache; set TORCH_HOME to move it) "
           f"or in the folder given with --hac-weights-dir")
    if offline:
        raise WeightsNotFound(
            f"CompressAI checkpoint {filename} ({name} quality {quality}) is not in {where}, and downloads are off "
            f"(--hac-offline): {fix}")
    return _download(url, path, name, quality, fix)


def _download(url: str, path: Path, name: str, quality: int, fix: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # CompressAI names its files <name>-<first 8 hex of sha256>: check it, so that an
    # error page saved under the checkpoint's name is caught here.
    match = torch.hub.HASH_REGEX.search(path.name)
    try:
        torch.hub.download_url_to_file(url, str(path), match.group(1) if match else None, progress=False)
    except Exception as exc:  # urllib, SSL, hash mismatch, disk: all mean "not there"
        raise WeightsNotFound(
            f"could not download CompressAI checkpoint {path.name} ({name} quality {quality}) from {url}: "
            f"{type(exc).__name__}: {exc}. Without network access, {fix}") from exc
    return path


def zoo_factory(name: str):
    """The registry factory of zoo model ``name``."""
    def factory(quality: int, *, weights_dir: Path | None = None, offline: bool = False, **_: Any) -> CompressAICodec:
        return load_zoo(name, quality, weights_dir=weights_dir, offline=offline)

    factory.__name__ = f"zoo_{name.replace('-', '_')}"
    return factory
