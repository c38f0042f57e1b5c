"""``get_model(name)``: registry entries, ``timm:<name>``, ``package.module:factory`` and model files."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import HacError, WeightsNotFound
from ..registry import MODELS, ModelInfo
from .classifier import Classifier

MODEL_FILE_SUFFIXES = {".pt", ".pth", ".ts", ".pt2", ".jit"}


def get_model(name: str, *, device: torch.device | str = "cpu", trust_files: bool = False,
              offline: bool = False, input_size: int | None = None, resize_size: int | None = None) -> Classifier:
    """Load model ``name``: a registry key, ``timm:<name>``, ``module.path:factory``, or a model file.

    Model files (TorchScript, pickled modules) run code when loaded, so they need
    ``trust_files=True`` (``--hac-trust-model-file``). With ``offline`` nothing is downloaded:
    missing weights are an error that names the file and where to put it.
    ``input_size`` and ``resize_size`` set the preprocessing of a user's module that does not
    say it (``input_size``/``resize_size`` attributes); a model that has its own refuses them.
    """
    sizes = Sizes(input_size, resize_size)
    if name in MODELS:
        entry = MODELS.entry(name)
        takes_offline = "offline" in inspect.signature(entry.factory).parameters
        module = entry.factory(offline=offline) if takes_offline else entry.factory()
        model = _as_classifier(module, entry.name, entry.info)
        sizes.refuse_for(model, "a registered model")
    elif name.startswith("timm:"):
        model = _timm(name[5:], offline)
        sizes.refuse_for(model, "a timm model (its pretrained configuration)")
    elif ":" in name and not Path(name).exists():
        model = _from_factory(name, sizes)
    elif Path(name).suffix in MODEL_FILE_SUFFIXES or Path(name).exists():
        model = _from_file(Path(name), trust_files, sizes)
    else:
        from ..errors import unknown_name

        forms = ["timm:<name>", "package.module:factory", "path/to/model.pt"]
        raise unknown_name("model", name, MODELS.names() + forms)
    return model.to(device).eval()


@dataclass(frozen=True)
class Sizes:
    """The preprocessing a user gave with ``--hac-input-size=SIZE,resize=N`` (None: not given)."""

    input_size: int | None = None
    resize_size: int | None = None

    def refuse_for(self, model: Classifier, what: str) -> None:
        """A model that states its preprocessing keeps it: a different setting is a usage error, never ignored."""
        for option, given, own in (("--hac-input-size", self.input_size, model.input_size),
                                   ("--hac-input-size's resize=", self.resize_size, model.resize_size)):
            if given is not None and given != own:
                raise HacError(f"{option}={given}: model {model.name!r} is {what} with its own preprocessing (input "
                               f"size {model.input_size}, resize {model.resize_size}); drop {option}")

    def of(self, module: nn.Module, name: str) -> tuple[int, int]:
        """(input size, resize size) of a user's module: its attributes, else the options, else 224 and 256/224."""
        sizes = []
        for attr, given in (("input_size", self.input_size), ("resize_size", self.resize_size)):
            own = getattr(module, attr, None)
            if own is not None and given is not None and int(own) != given:
                raise HacError(f"--hac-{attr.replace('_', '-')}={given}: model {name!r} says {attr} = {own}; drop the "
                               f"option or change the attribute")
            sizes.append(int(own) if own is not None else given)
        size = sizes[0] if sizes[0] is not None else 224
        return size, sizes[1] if sizes[1] is not None else round(size * 256 / 224)


def validate_model_name(name: str) -> str:
    """The canonical name of ``name``, checked without loading anything heavy.

    Registry names and aliases, ``timm:<name>``, model files, and ``package.module:factory``
    whose module can be found (so a missing ``pythonpath`` is one usage error, not a
    failure in every cell).
    """
    if name in MODELS:
        return MODELS.canonical(name)
    if name.startswith("timm:") or Path(name).suffix in MODEL_FILE_SUFFIXES or Path(name).exists():
        return name
    if ":" in name:
        module_name = name.partition(":")[0]
        try:
            found = importlib.util.find_spec(module_name) is not None
        except (ImportError, ValueError):  # a parent package that is missing or fails to import
            found = False
        if not found:
            raise HacError(
                f"--hac-model={name!r}: cannot find module {module_name!r}. If it lives in your project, add its "
                f"folder to pytest's import path: pythonpath = [\".\"] under [tool.pytest.ini_options] (or "
                f"[pytest] in pytest.ini), or install your package (pip install -e .)")
        return name
    from ..errors import unknown_name

    raise unknown_name("model", name, MODELS.names() + ["timm:<name>", "package.module:factory", "path/to/model.pt"])


def model_info(name: str) -> ModelInfo | None:
    """Registry metadata for ``name``, or None for models only known after loading."""
    return MODELS.info(name) if name in MODELS else None


def _as_classifier(module: nn.Module, name: str, info: ModelInfo) -> Classifier:
    """A registered model: its module (taking [0, 1] inputs) with the registration's sizes and labels."""
    if isinstance(module, Classifier):
        return module
    num = getattr(module, "num_classes", None) or (1000 if info.label_space == "imagenet" else 10)
    # A plain module takes [0, 1] inputs and normalizes itself: identity normalization here.
    return Classifier(module, mean=(0, 0, 0), std=(1, 1, 1), num_classes=num, input_size=info.input_size,
                      resize_size=info.resize_size, label_space=info.label_space, name=name)


def _timm(arch: str, offline: bool) -> Classifier:
    try:
        import timm
    except ImportError as exc:
        raise HacError(f"--hac-model=timm:{arch} needs timm: pip install timm") from exc
    if offline:
        raise WeightsNotFound(f"timm:{arch} would download weights, but downloads are off (--hac-offline)")
    net = timm.create_model(arch, pretrained=True)
    cfg = net.pretrained_cfg
    size = cfg["input_size"][-1]
    return Classifier(net, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), num_classes=net.num_classes,
                      input_size=size, resize_size=int(round(size / cfg.get("crop_pct", 0.875))),
                      label_space="imagenet" if net.num_classes == 1000 else "index", name=f"timm:{arch}")


def _from_factory(spec: str, sizes: Sizes) -> Classifier:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:  # said once, without the chained traceback
        raise HacError(f"--hac-model={spec!r}: cannot import {attr!r} from {module_name!r} ({type(exc).__name__}: "
                       f"{exc}); give 'package.module:factory' importable from the test run (pythonpath = [\".\"] "
                       f"in the ini file for a module of your project)") from None
    try:
        module = factory()
    except Exception as exc:  # noqa: BLE001  (a user's code: said once, as a usage error, without the chain)
        raise HacError(f"--hac-model={spec!r}: the factory raised {type(exc).__name__}: {exc}; fix the factory "
                       f"(run it in plain Python to see the traceback)") from None
    if not isinstance(module, nn.Module):
        raise HacError(f"--hac-model={spec!r}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    return _infer(module, spec, sizes)


def _from_file(path: Path, trust: bool, sizes: Sizes) -> Classifier:
    if not path.is_file():
        raise HacError(f"--hac-model={str(path)!r}: no such model file and no registered model of that name; "
                       f"see --hac-list")
    if not trust:
        raise HacError(
            f"--hac-model={str(path)!r} is a model file; loading TorchScript or pickled models executes code "
            f"from the file. If you trust it, add --hac-trust-model-file (ini: hac_trust_model_file = true)"
        )
    try:
        if path.suffix == ".pt2":
            module = torch.export.load(str(path)).module()
        else:
            try:
                module = torch.jit.load(str(path), map_location="cpu")
            except RuntimeError:  # not TorchScript: a pickled module (trusted, so full unpickling is allowed)
                module = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001  corrupt, truncated, or pickled from code not importable here
        raise HacError(f"cannot load model file {path}: {type(exc).__name__}: {exc}. Save the model with "
                       f"torch.jit.script(model).save(...) or torch.export, or use a 'package.module:factory'") from exc
    if not isinstance(module, nn.Module):
        raise HacError(f"{path} holds a {type(module).__name__}; save the whole model (TorchScript or torch.export), "
                       f"or use a 'package.module:factory' that builds it and loads the state dict")
    return _infer(module, path.stem, sizes)


def _infer(module: nn.Module, name: str, sizes: Sizes) -> Classifier:
    """Wrap a user's module (taking [0, 1] inputs) after probing its output size."""
    if isinstance(module, Classifier):
        sizes.refuse_for(module, "a Classifier")
        return module
    size, resize = sizes.of(module, name)
    module.eval()
    try:
        with torch.inference_mode():
            probe = module(torch.full((1, 3, size, size), 0.5))
    except Exception as exc:  # noqa: BLE001  a user's module: say which contract it broke
        raise HacError(f"model {name!r} fails on a probe batch of shape (1, 3, {size}, {size}) in [0, 1] "
                       f"({type(exc).__name__}: {exc}); if it expects another image size, set an 'input_size' "
                       f"attribute on the module or --hac-input-size") from exc
    if not isinstance(probe, torch.Tensor) or probe.ndim != 2:
        shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
        raise HacError(f"model {name!r} returned {shape}; a classifier returns (N, classes) logits")
    num = probe.shape[1]
    return Classifier(module, mean=(0, 0, 0), std=(1, 1, 1), num_classes=num, input_size=size, resize_size=resize,
                      label_space="imagenet" if num == 1000 else "index", name=name)


