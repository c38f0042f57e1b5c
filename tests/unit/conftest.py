"""Fixtures of the library-level tests."""
import pytest
import torch


@pytest.fixture(scope="session")
def photos() -> torch.Tensor:
    """Natural photos (scikit-image's CC0 astronaut and coffee) as a float batch in [0, 1]."""
    from skimage import data

    imgs = [torch.from_numpy(data.astronaut()[:256, 128:384].copy()),
            torch.from_numpy(data.coffee()[:256, :256].copy())]
    return torch.stack(imgs).permute(0, 3, 1, 2).float().div(255)


@pytest.fixture
def registries():
    """Models, codecs and attacks registered in a test vanish after it."""
    from pytest_hac.registry import snapshot

    restore = snapshot()
    yield
    restore()
