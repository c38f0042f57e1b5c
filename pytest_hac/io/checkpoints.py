"""Loading checkpoints safely: ``weights_only`` always, and errors that say what to do."""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import torch

from ..errors import WeightsNotFound

#: The embedded weights (tiny classifiers and codecs) and their cards.
EMBEDDED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"

def hub_checkpoint_dir() -> Path:
    """Where torchvision and CompressAI cache downloaded weights (honours ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def check_checkpoint_file(path: Path, what: str = "checkpoint", why_html: str = "") -> None:
    """Fail early, naming the fix, on a missing or empty file or a failed download saved as the checkpoint."""
    if not path.is_file():
        raise WeightsNotFound(f"{what} not found: {path}. Place the file there "
                              f"(or point --hac-weights-dir at its folder)")
    if path.stat().st_size == 0:
        raise WeightsNotFound(f"{what} {path} is empty (0 bytes): a failed or interrupted download. Delete it and "
                              f"download it again")
    with path.open("rb") as fh:
        head = fh.read(64).lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"{")):
        raise WeightsNotFound(
            f"{what} {path} is a text/HTML file ({path.stat().st_size} bytes), not a checkpoint: "
            f"a failed download{why_html}. Delete it and download it again"
        )


def load_state_dict(path: Path | str, *, expected_keys: Iterable[str] | None = None, what: str = "checkpoint") -> dict:
    """``torch.load(weights_only=True)`` with errors that say what went wrong and how to fix it.

    Catches the classic failed download (an HTML page saved under the checkpoint's
    name), truncated files and checkpoints for another architecture.
    """
    path = Path(path)
    check_checkpoint_file(path, what)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or pickled files
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if refused:  # torch's own message suggests weights_only=False: exactly what must not happen unasked
            raise WeightsNotFound(
                f"{what} {path} holds pickled Python objects ({refused.group(1)}) that torch.load(weights_only=True) "
                f"refuses: loading them needs arbitrary code to run. Re-save it as a plain state dict "
                f"(torch.save(model.state_dict(), path)) where you trust the file"
            ) from None
        raise WeightsNotFound(
            f"cannot load {what} {path} with torch.load(weights_only=True): {type(exc).__name__}: {exc}. "
            f"The file is corrupt, truncated, or needs arbitrary code to load; re-download it or re-save it as a "
            f"state dict"
        ) from exc
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise WeightsNotFound(f"{what} {path} holds a {type(obj).__name__}, not a state dict")
    if expected_keys is not None:
        missing = sorted(set(expected_keys) - set(obj))
        if missing:
            raise WeightsNotFound(
                f"{what} {path} does not fit the architecture: {len(missing)} keys missing (e.g. {missing[:3]}); "
                f"is it a checkpoint for another model or quality?"
            )
    return obj
