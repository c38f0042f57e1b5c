"""The fixtures a test touches: ``hac_case``, ``hac_evaluate`` and the run's model, data, engine and settings."""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from ..core.cells.cases import Case
from ..core.judge.result import Result
from ..errors import HacError
from ..run import HacRun
from .pictures import GALLERY_PROPERTY
from .session import PLUGIN_NAME, RESULT_KEY


def _run(request: pytest.FixtureRequest) -> HacRun:
    plugin = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is None:
        raise pytest.UsageError("pytest-hac is not configured (was it disabled with -p no:hac?)")
    return plugin.run


def _usage(fn):
    try:
        return fn()
    except HacError as exc:
        message = f"pytest-hac: {exc}"
    pytest.fail(message, pytrace=False)  # outside the except block: said once, without "During handling..."


@pytest.fixture(scope="session")
def hac_run(request: pytest.FixtureRequest) -> HacRun:
    """The run's :class:`~pytest_hac.run.HacRun`: settings, lazily loaded model/data/engine, cells."""
    return _run(request)


@pytest.fixture(scope="session")
def hac_settings(hac_run: HacRun):
    """The validated :class:`~pytest_hac.settings.Settings` of this run."""
    return hac_run.settings


@pytest.fixture(scope="session")
def hac_model(hac_run: HacRun):
    """The classifier under test (loaded once per session, eval mode, on the chosen device)."""
    return _usage(lambda: hac_run.loaded.model)


@pytest.fixture(scope="session")
def hac_dataset(hac_run: HacRun):
    """The evaluation images, preprocessed for ``hac_model`` (loaded once per session)."""
    return _usage(lambda: hac_run.loaded.dataset)


@pytest.fixture(scope="session")
def hac_engine(hac_run: HacRun):
    """The session's :class:`~pytest_hac.core.engine.engine.Engine`: caches and batches every case."""
    return _usage(lambda: hac_run.engine)


@pytest.fixture
def hac_case(request: pytest.FixtureRequest) -> Case:
    """The cell this test instance checks (set by the ``hac`` marker's parametrization)."""
    return request.param


def _selected(session: pytest.Session) -> list[Case]:
    cases = [item.callspec.params["hac_case"] for item in session.items
             if "hac_case" in getattr(getattr(item, "callspec", None), "params", {})]
    return list({c.id: c for c in cases}.values())


def cell_weights(session: pytest.Session, engine) -> dict[str, float]:
    """The planned cost of each selected cell (an xdist controller's estimate of the time left)."""
    from ..core.engine.workload import weights

    return weights(engine, _selected(session))


def planned_passes(session: pytest.Session, engine) -> dict[str, dict[str, int]]:
    """Per selected cell, its and its probes' image passes by kind (this process's estimate of the time left)."""
    from ..core.engine import workload

    return {w.case_id: workload.planned_passes([w]) for w in workload.workload(engine, _selected(session))}


@pytest.fixture
def hac_evaluate(request: pytest.FixtureRequest, hac_run: HacRun) -> Callable[[Case], Result]:
    """``hac_evaluate(case) -> Result``: evaluate (reusing earlier work). The cell's verdict is decided when
    its test ends, from the marker's threshold whether or not the body asserts it; an assertion in the body
    can only add a stricter check."""

    def evaluate(case: Case) -> Result:
        from .progress import live_status

        engine = _usage(lambda: hac_run.engine)
        plugin = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
        settings = hac_run.settings
        with live_status(request.config, plugin.scope.selected, settings.progress is None, engine, case.id,
                         settings.progress or 0.0, lambda: planned_passes(request.session, engine)):
            result = _usage(lambda: hac_run.evaluate(case))
        if engine.gallery is not None:  # the controller takes it off (pictures.GalleryCollector): not for JUnit
            request.node.user_properties.append((GALLERY_PROPERTY, json.dumps(engine.gallery.to_dict([case.id]))))
        request.node.stash[RESULT_KEY] = result
        return result

    return evaluate
