"""Fixtures shared by pytest-hac's own tests (unit/, plugin/, reliability/, benchmarks/).

Fixtures used by one folder only live in that folder's conftest.py.
"""
# Imported before any in-process pytester run: pytester forgets the modules first imported during a run,
# and importing these a second time makes torch register an operator library twice (RuntimeError).
# torch imports _dynamo lazily, on the first attack or optimizer step.
import hypothesis.internal.observability  # noqa: F401
import pytest
import torch  # noqa: F401
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
