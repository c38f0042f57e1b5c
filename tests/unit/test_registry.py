"""The registries of models, codecs and attacks: built-ins load lazily and carry the right metadata,
a name is registered once unless replaced, and an unknown name gets the closest one."""

import pytest

from pytest_hac.errors import HacError
from pytest_hac.registry import ATTACKS, CODECS, MODELS, register_codec


def test_registration_does_not_import_compressai(fresh_import):
    assert "tiny-mse" in fresh_import["codecs"] and "compressai" not in fresh_import["modules"]


@pytest.mark.parametrize("name", ["resnet50", "vit"])
def test_torchvision_models_are_registered_at_their_weights_sizes(name):
    """The registration's input and resize sizes are those of the weights' own preprocessing."""
    import torchvision

    from pytest_hac.models.builtin import TORCHVISION

    arch, weights = TORCHVISION[name]
    preprocessing = torchvision.models.get_model_weights(arch)[weights].transforms()
    info = MODELS.info(name)
    assert ([info.input_size], [info.resize_size]) == (preprocessing.crop_size, preprocessing.resize_size)


def test_a_name_is_registered_once_unless_replaced(registries):
    from pytest_hac.codecs.base import Identity

    with pytest.raises(HacError, match="codec 'jpeg' is already registered; pass replace=True to override it"):
        register_codec("jpeg", lambda q, **_: Identity())
    register_codec("jpeg", lambda q, **_: Identity(), description="a stand-in", replace=True)
    assert CODECS.info("jpeg").qualities is None and CODECS.entry("jpeg").description == "a stand-in"


@pytest.mark.parametrize("registry, typo, closest", [(MODELS, "resnet5", "resnet50"), (CODECS, "jpg", "jpeg"),
                                                     (ATTACKS, "pgdd", "pgd")], ids=["model", "codec", "attack"])
def test_an_unknown_name_suggests_the_closest_and_lists_the_valid_ones(registry, typo, closest):
    with pytest.raises(HacError) as info:
        registry.canonical(typo)
    message = str(info.value)
    assert f"unknown {registry.kind} {typo!r}. Did you mean {closest!r}?" in message
    assert all(name in message for name in registry.names())
