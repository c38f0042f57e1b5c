"""pytest-hac's own hooks, for a ``conftest.py`` or a plugin (like pytest-benchmark's hookspec)."""
from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_hac_register(registry, config) -> None:
    """Register models, codecs and attacks before options are validated.

    ``registry`` is :mod:`pytest_hac.registry` with ``register_model``,
    ``register_codec`` and ``register_attack``::

        def pytest_hac_register(registry, config):
            registry.register_codec("my-codec", lambda q, **_: MyCodec(q), qualities=range(1, 5))
    """


@pytest.hookspec
def pytest_hac_update_report(config, report) -> None:
    """Change the session's :class:`~pytest_hac.report.schema.Report` (e.g. add ``report.notes``) before writing."""
