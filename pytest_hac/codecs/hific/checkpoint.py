"""HiFiC checkpoints of the PyTorch port: the variants table, safe loading and conversion to :class:`.HiFiCModel`.

The port (github.com/Justin-Tan/high-fidelity-generative-compression) publishes
``hific_low.pt`` / ``hific_med.pt`` / ``hific_hi.pt`` (about 2 GB each) as
``{"model_state_dict": ..., "args": ...}``. They are loaded with ``weights_only=True``
(nothing in them is executed), the architecture's sizes are read from the tensors, and
input normalisation and likelihood come from the stored args or the variant's documented
defaults. HiFiC weights are never downloaded: they come from ``--hac-weights-dir``.
"""
from __future__ import annotations

import argparse
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import HacError, WeightsNotFound
from ...io.checkpoints import check_checkpoint_file, hub_checkpoint_dir
from .model import HiFiCModel

PORT_URL = "https://github.com/Justin-Tan/high-fidelity-generative-compression"


@dataclass(frozen=True)
class Variant:
    """One public checkpoint and the settings it was trained with (the port's README)."""

    name: str
    filename: str
    target_bpp: float
    #: Trained with ``-norm``: inputs in [-1, 1], generator output through tanh.
    normalize_input: bool
    likelihood: str
    drive_id: str

    @property
    def url(self) -> str:
        return f"https://drive.google.com/open?id={self.drive_id}"


VARIANTS: dict[int, Variant] = {
    1: Variant("low", "hific_low.pt", 0.14, True, "gaussian", "1hfFTkZbs_VOBmXQ-M4bYEPejrD76lAY9"),
    2: Variant("med", "hific_med.pt", 0.30, False, "logistic", "1QNoX0AGKTBkthMJGPfQI0dT0_tnysYUb"),
    3: Variant("hi", "hific_hi.pt", 0.45, True, "gaussian", "1BFYpvhVIA_Ek2QsHBbKnaBE8wn1GhFyA"),
}


def model_from_state_dict(state: dict[str, Tensor], *, what: str = "checkpoint", **kwargs: Any) -> HiFiCModel:
    """Build the model the state dict describes (sizes read from its tensors) and load it."""
    arch = _infer_architecture(state, what)
    with torch.device("meta"):  # no 700 MB of random init just to overwrite it
        model = HiFiCModel(**arch, **kwargs)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise WeightsNotFound(
            f"{what} does not fit HiFiC: {len(missing)} keys missing (e.g. {missing[:3]}); "
            f"expected a checkpoint of {PORT_URL}"
        )
    wrong = [f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}"
             for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise WeightsNotFound(f"{what} does not fit HiFiC: shape mismatch in {wrong[:3]}")
    model.load_state_dict({k: state[k].float() for k in expected}, assign=True)
    return model


def _infer_architecture(state: dict[str, Tensor], what: str) -> dict[str, Any]:
    """Read widths, latent channels, residual blocks and hyper sizes from the tensors themselves."""
    try:
        widths = tuple(state[f"Encoder.conv_block{i}.1.weight"].shape[0] for i in range(1, 6))
        latent_channels = state["Encoder.conv_block_out.1.weight"].shape[0]
        hyper = state["Hyperprior.analysis_net.conv1.weight"].shape[0]
        n_layers = sum(1 for k in state if k.startswith("Hyperprior.hyperlatent_likelihood.H_"))
        density = tuple(state[f"Hyperprior.hyperlatent_likelihood.H_{k}"].shape[1] for k in range(n_layers - 1))
    except KeyError as exc:
        sample = sorted(state)[:3]
        raise WeightsNotFound(
            f"{what} is not a HiFiC checkpoint in the layout of {PORT_URL}: key {exc} is missing "
            f"(it holds {len(state)} tensors, e.g. {sample})"
        ) from None
    blocks = {k.split(".")[1] for k in state if k.startswith("Generator.resblock_")}
    return dict(
        latent_channels=latent_channels, widths=widths, n_residual_blocks=len(blocks),
        hyperlatent_filters=hyper, density_filters=density,
    )


class _Opaque:
    """Inert stand-in for a class a checkpoint names and we do not trust: keeps its state as data."""

    state: Any = None  # NEWOBJ creates instances without calling __init__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state = dict(kwargs)

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"state": state}


def _safe_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` that tolerates the port's ``args`` entry.

    ``argparse.Namespace`` is allowed for the duration of the call only. Any other
    class the file names (found with ``get_unsafe_globals_in_checkpoint``) is replaced
    by the inert ``_Opaque``: nothing from the file is ever executed, no plain pickle.
    """
    kwargs = dict(map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, **kwargs)
    except Exception as exc:  # corrupt zip, legacy format, unknown globals: several types
        first = exc
    try:
        names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(path) if n != "argparse.Namespace"]
    except Exception:
        names = []
    if names:
        try:
            with torch.serialization.safe_globals([argparse.Namespace, *[(_Opaque, n) for n in names]]):
                return torch.load(path, **kwargs)
        except Exception as exc:
            first = exc
    raise WeightsNotFound(
        f"cannot load HiFiC checkpoint {path} with torch.load(weights_only=True): {type(first).__name__}: {first}. "
        f"The file is corrupt or truncated (re-download it), or holds objects that need arbitrary code to load "
        f"(re-save it as {{'model_state_dict': ..., 'args': dict(...)}} from a trusted session)"
    ) from first


def _args_dict(args: Any) -> dict[str, Any] | None:
    """The port stores its training args as a dict; accept a Namespace or a stub too."""
    if args is None:
        return None
    if isinstance(args, dict):
        return args
    if isinstance(args, _Opaque):
        return args.state if isinstance(args.state, dict) else {}
    return dict(vars(args)) if hasattr(args, "__dict__") else None


def load_checkpoint(path: Path | str) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    """State dict and stored training args (None when absent) of a port checkpoint, on CPU."""
    path = Path(path)
    check_checkpoint_file(path, "HiFiC checkpoint",
                          " (Google Drive serves a confirmation page for large files)")
    obj = _safe_load(path)
    if not isinstance(obj, dict):
        raise WeightsNotFound(f"HiFiC checkpoint {path} holds a {type(obj).__name__}, not a dict")
    args = _args_dict(obj.get("args"))
    state = next((obj[k] for k in ("model_state_dict", "state_dict") if isinstance(obj.get(k), dict)), obj)
    # multi-GPU training may leave a "module." prefix
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}
    return state, args


def _settings(args: dict[str, Any] | None, variant: Variant | None) -> tuple[bool, str, str]:
    """Input normalisation and likelihood: from the stored args when present, else the variant's documented default."""
    default_norm = variant.normalize_input if variant else False
    default_lik = variant.likelihood if variant else "gaussian"
    if args is None:
        return default_norm, default_lik, _defaults_label(variant)
    for flag in ("sample_noise", "use_latent_mixture_model"):
        if args.get(flag):
            raise HacError(f"HiFiC checkpoints trained with {flag}=True are not supported")
    norm = bool(args.get("normalize_input_image", default_norm))
    lik = str(args.get("likelihood_type", default_lik))
    where = "checkpoint args" if "normalize_input_image" in args else _defaults_label(variant)
    return norm, lik, where


def _defaults_label(variant: Variant | None) -> str:
    return f"defaults for hific_{variant.name}" if variant else "defaults"


def load_model(path: Path | str, quality: int | None = None) -> tuple[HiFiCModel, str]:
    """The model of a port checkpoint and where its settings came from ("checkpoint args" or the
    defaults of the variant ``quality`` 1, 2, 3 picks, used when the file has no args)."""
    state, args = load_checkpoint(path)
    variant = VARIANTS.get(quality) if quality is not None else None
    norm, likelihood, where = _settings(args, variant)
    model = model_from_state_dict(state, what=f"HiFiC checkpoint {path}", normalize_input_image=norm,
                                  likelihood=likelihood)
    return model, where


def checkpoint_path(quality: int, weights_dir: Path | None = None) -> Path:
    """Where variant ``quality``'s checkpoint must be (``weights_dir``, else torch.hub's cache); an error
    naming the file, its source and the option when it is not there."""
    variant = VARIANTS[quality]
    folder = Path(weights_dir) if weights_dir is not None else hub_checkpoint_dir()
    path = folder / variant.filename
    if not path.is_file():
        where = "" if weights_dir is not None else " (the default folder; no --hac-weights-dir was given)"
        raise WeightsNotFound(
            f"HiFiC-{variant.name} checkpoint {variant.filename} not found in {folder}{where}. HiFiC weights are "
            f"never downloaded automatically: get {variant.filename} (~2 GB, target {variant.target_bpp} bpp) from the "
            f"'Pretrained Models' table of {PORT_URL} (Google Drive: {variant.url}), save it as {path}, "
            f"or pass --hac-weights-dir=<folder holding {variant.filename}>"
        )
    return path
