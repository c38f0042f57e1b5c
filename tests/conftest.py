"""Shared fixtures for pytest-hac's own tests."""
# Imported before any in-process pytester run: pytester forgets the modules first imported during a run,
# and importing these a second time makes torch register an operator library twice (RuntimeError).
# torch imports _dynamo lazily, on the first attack or optimizer step.
import hypothesis.internal.observability  # noqa: F401
import pytest
import torch
import torch._dynamo  # noqa: F401

pytest_plugins = ["pytester"]


@pytest.fixture
def suite(pytester: pytest.Pytester):
    """A pytester project: ``suite(source, ini)`` writes ``test_cells.py`` and a ``pytest.ini``."""

    def make(source: str, ini: str = "") -> pytest.Pytester:
        pytester.makeini(f"[pytest]\n{ini}\n")
        pytester.makepyfile(test_cells=source)
        return pytester

    return make


@pytest.fixture(scope="session")
def photos() -> torch.Tensor:
    """Natural photos (scikit-image's CC0 astronaut and coffee) as a float batch in [0, 1]."""
    from skimage import data

    imgs = [torch.from_numpy(data.astronaut()[:256, 128:384].copy()), torch.from_numpy(data.coffee()[:256, :256].copy())]
    return torch.stack(imgs).permute(0, 3, 1, 2).float().div(255)
