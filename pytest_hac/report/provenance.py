"""What a report records of how it was made: package versions, the data's name, notes on preprocessing."""
from __future__ import annotations

import platform
from pathlib import Path

from ..codecs.pillow_codecs import codec_libraries
from ..io.cache import package_versions
from ..models import model_info
from ..settings import Settings

#: Packages whose versions a report records: those that can change its numbers.
REPORTED_PACKAGES = ("pytest-hac", "torch", "torchvision", "torchattacks", "compressai", "kornia", "pillow", "numpy")


def versions() -> dict[str, str]:
    """Versions that change numbers, the image codecs' libraries included; recorded in every report (and checked
    against baselines)."""
    return {"python": platform.python_version(), **package_versions(REPORTED_PACKAGES), **codec_libraries()}


def default_data(settings: Settings) -> str:
    """The data a model is evaluated on when ``--hac-data`` is not given."""
    if settings.data:
        return settings.data
    info = model_info(settings.model)
    return "digits" if info is not None and info.label_space == "digits" else "embedded"


def upscaling_note(info: dict, n: int, model: str) -> list[str]:
    """A note when photos were enlarged more than 2x to reach the model's input, with advice that fits: a few
    small photos among larger ones are the data's (check them); most of them, a model that should say its size
    (settings for a user's model; a registered model's preprocessing is its own, so larger photos)."""
    if not info.get("upscaled"):
        return []
    pre = info.get("preprocessing", {})
    head = (f"{info['upscaled']} of {n} images were enlarged more than 2x to reach the model's preprocessing "
            f"(shorter side resized to {pre.get('resize')}, cropped to {pre.get('crop')}; the smallest photo's "
            f"shorter side is {info.get('source_size')} px)")
    if 2 * info["upscaled"] < n:
        return [f"{head}: a few small photos among larger ones; check them, or leave them out of the data"]
    if model_info(model) is not None:
        return [f"{head}: registered model {model!r} has its own preprocessing; evaluate it on photos of "
                f"{pre.get('resize')} px or more"]
    return [f"{head}: a model trained on images this small should say its size; set --hac-input-size=SIZE,resize=N "
            f"(or input_size/resize_size attributes on the module)"]


def dataset_name(spec: str) -> str:
    """How reports name the data: the built-in name, or the folder's."""
    return spec if spec in ("embedded", "digits") else Path(spec).expanduser().name
