"""pytest hooks only: options, marker, parametrization, fixtures, recording, summary, xdist merge.

Everything else lives in the library so it also works from plain Python.
"""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from .cases import Case, expand
from .config import OPTIONS, Option, settings_from
from .errors import HacError
from .result import Result
from .session import HacSession

SESSION_KEY = pytest.StashKey[HacSession]()
RESULT_KEY = pytest.StashKey[Result]()
OFFLINE_BEFORE_KEY = pytest.StashKey["str | None"]()
PROPERTY = "hac_result"
SKIPPED_PROPERTY = "hac_skipped_images"
FINISHED_PROPERTY = "hac_cell_finished"
MARKER_HELP = (
    "hac(codecs={'jpeg': [25, 50]}, rounds=[1, 2], threats=['clean', 'oblivious', 'whitebox'], attack='pgd', "
    "eps=4/255, min_accuracy=0.5): expand a test taking the hac_case fixture into one test per robustness cell"
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hac", "pytest-hac: robustness behind compression defenses")
    for opt in OPTIONS:
        if opt.kind == "bool":
            group.addoption(opt.flag, action="store_const", const=True, default=None, dest=opt.ini, help=opt.help)
        elif opt.kind == "optional":
            group.addoption(opt.flag, nargs="?", const="", default=None, dest=opt.ini, metavar=opt.metavar,
                            help=opt.help)
        else:
            group.addoption(opt.flag, default=None, dest=opt.ini, metavar=opt.metavar, help=opt.help)
        parser.addini(opt.ini, opt.help, default=None)
    group.addoption("--hac-list", action="store_true", default=False,
                    help="list models, data sets, codecs, attacks and threats, then exit")


def _raw(config: pytest.Config) -> Callable[[Option], object]:
    def get(opt: Option) -> object:
        value = config.getoption(opt.ini)
        if value is None:
            import os

            value = os.environ.get(opt.env)
        if value is None:
            value = config.getini(opt.ini)
        return value

    return get


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    if config.getoption("hac_list"):
        return
    from . import registries

    config.hook.pytest_hac_register(registry=registries, config=config)
    worker = getattr(config, "workerinput", None)
    try:
        settings = settings_from(_raw(config))
        if worker is not None and settings.device == "cuda":
            settings = _spread_over_gpus(settings, worker["workerid"])
        session = HacSession(settings, write_files=worker is None)
    except HacError as exc:
        raise pytest.UsageError(f"pytest-hac: {exc}") from None
    if settings.offline:
        import os

        # Library code below the plugin reads the environment; restored in pytest_unconfigure
        # so in-process runs (pytester, IDEs) do not leak the setting into the next session.
        config.stash[OFFLINE_BEFORE_KEY] = os.environ.get("HAC_OFFLINE")
        os.environ["HAC_OFFLINE"] = "1"
    if settings.cache_clear and settings.cache_dir is not None and worker is None:  # once, before workers start
        from .cache import DiskCache

        DiskCache(settings.cache_dir).clear()
    config.stash[SESSION_KEY] = session


def pytest_unconfigure(config: pytest.Config) -> None:
    if OFFLINE_BEFORE_KEY not in config.stash:
        return
    import os

    before = config.stash[OFFLINE_BEFORE_KEY]
    if before is None:
        os.environ.pop("HAC_OFFLINE", None)
    else:
        os.environ["HAC_OFFLINE"] = before


def _spread_over_gpus(settings, worker_id: str):
    """One xdist worker per GPU: gw0 -> cuda:0, gw1 -> cuda:1, ..."""
    import dataclasses

    import torch

    index = int(worker_id.lstrip("gw") or 0) % max(1, torch.cuda.device_count())
    return dataclasses.replace(settings, device=f"cuda:{index}")


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("hac_list"):
        from .listing import listing

        print(listing())
        return 0
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hac_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("hac")
    if marker is None:
        pytest.fail(f"{metafunc.definition.nodeid} uses hac_case but has no @pytest.mark.hac(...) marker",
                    pytrace=False)
    session = metafunc.config.stash.get(SESSION_KEY, None)
    defaults = session.settings.marker_defaults if session else {}
    try:
        cases = expand(marker.kwargs, defaults)
        thresholds = session.thresholds_for(metafunc.definition.path.parent) if session else None
    except HacError as exc:
        pytest.fail(f"{metafunc.definition.nodeid}: {exc}", pytrace=False)
    if thresholds is not None:
        import dataclasses

        model = session.settings.model
        cases = [dataclasses.replace(c, threshold=t) if (t := thresholds.lookup(model, c.id)) is not None else c
                 for c in cases]
        session.threshold_files.setdefault(thresholds.path, (thresholds, []))[1].extend(c.id for c in cases)
    metafunc.parametrize("hac_case", cases, ids=[c.id for c in cases])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    hac = config.stash.get(SESSION_KEY, None)
    if hac is None:
        return
    for thresholds, case_ids in hac.threshold_files.values():
        unused = thresholds.unused(hac.settings.model, case_ids)
        if unused:
            raise pytest.UsageError(f"pytest-hac: {thresholds.path}: [{hac.settings.model}] patterns {unused} match "
                                    f"no cell; fix or remove them")
    if hac.settings.shard is not None:
        index, count = hac.settings.shard
        cells = sorted(item.nodeid for item in items if "hac_case" in getattr(item, "fixturenames", ()))
        keep = {nodeid for i, nodeid in enumerate(cells) if i % count == index - 1}
        dropped = [it for it in items if "hac_case" in getattr(it, "fixturenames", ()) and it.nodeid not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [it for it in items if it not in dropped]
    hac.expected_cells = sum(1 for item in items if "hac_case" in getattr(item, "fixturenames", ()))
    if hasattr(config, "workeroutput"):  # the xdist controller collects nothing: it learns the count from workers
        config.workeroutput["hac_expected_cells"] = hac.expected_cells


def _session(request: pytest.FixtureRequest) -> HacSession:
    try:
        return request.config.stash[SESSION_KEY]
    except KeyError:
        raise pytest.UsageError("pytest-hac is not configured (was it disabled with -p no:hac?)") from None


def _usage(fn):
    try:
        return fn()
    except HacError as exc:
        pytest.fail(f"pytest-hac: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def hac_session(request: pytest.FixtureRequest) -> HacSession:
    """The run's settings, lazily loaded model/data/engine, and recorded results."""
    return _session(request)


@pytest.fixture(scope="session")
def hac_settings(hac_session: HacSession):
    """The validated :class:`~pytest_hac.config.Settings` of this run."""
    return hac_session.settings


@pytest.fixture(scope="session")
def hac_model(hac_session: HacSession):
    """The classifier under test (loaded once per session, eval mode, on the chosen device)."""
    return _usage(lambda: hac_session.model)


@pytest.fixture(scope="session")
def hac_dataset(hac_session: HacSession):
    """The evaluation images, preprocessed for ``hac_model`` (loaded once per session)."""
    return _usage(lambda: hac_session.dataset)


@pytest.fixture(scope="session")
def hac_engine(hac_session: HacSession):
    """The session's :class:`~pytest_hac.engine.Engine`: caches and batches every case."""
    return _usage(lambda: hac_session.engine)


@pytest.fixture
def hac_case(request: pytest.FixtureRequest) -> Case:
    """The cell this test instance checks (set by the ``hac`` marker's parametrization)."""
    return request.param


@pytest.fixture
def hac_evaluate(request: pytest.FixtureRequest, hac_session: HacSession) -> Callable[[Case], Result]:
    """``hac_evaluate(case) -> Result``: evaluate (reusing earlier work) and record it for the report."""

    def evaluate(case: Case) -> Result:
        from .progress import live_status

        engine = _usage(lambda: hac_session.engine)
        with live_status(request.config, hac_session, engine, case.id):
            result = _usage(lambda: engine.evaluate(case))
        result.rule = hac_session.settings.gate
        request.node.stash[RESULT_KEY] = result
        for key in ("accuracy", "ci_low", "ci_high", "n", "bpp", "psnr"):
            request.node.user_properties.append((f"hac_{key}", getattr(result, key)))
        return result

    return evaluate


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "teardown" and "hac_case" in getattr(item, "fixturenames", ()):
        report.user_properties.append((FINISHED_PROPERTY, True))  # ran to the end: passed, failed or skipped
    result = item.stash.get(RESULT_KEY, None)
    if result is not None and report.when == "call":
        result.passed = report.passed
        report.user_properties.append((PROPERTY, json.dumps(result.to_dict())))
        hac = item.config.stash.get(SESSION_KEY, None)
        if hasattr(item.config, "workerinput") and hac is not None and "_loaded" in hac.__dict__ \
                and hac.dataset.skipped:  # the controller's report lists the images a worker skipped
            report.user_properties.append((SKIPPED_PROPERTY, json.dumps(list(hac.dataset.skipped))))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Runs on the controller for its own and every xdist worker's reports: one place records.

    Baseline regressions and (with --hac-strict) soundness findings fail the cell
    here, before pytest counts the outcome.
    """
    config = _CONFIG.get("config")
    session = config.stash.get(SESSION_KEY, None) if config else None
    if session is None or not session.write_files:
        return
    if report.when == "teardown" and any(k == FINISHED_PROPERTY for k, _ in report.user_properties):
        session.finished_cells.add(report.nodeid)
    if report.when != "call":
        return
    payload = next((v for k, v in report.user_properties if k == PROPERTY), None)
    if payload is None:
        return
    result = Result.from_dict(json.loads(payload))
    problems = []
    comp = session.compare(result)
    if result.regression:
        problems.append(f"{result.case_id}: accuracy dropped {-comp.delta_points:.1f} points against baseline "
                        f"{session.settings.compare!r} ({comp.baseline:.3f} -> {comp.current:.3f}, one-sided "
                        f"p={comp.p_drop:.3g}{' paired' if comp.paired else ''}), more than the allowed "
                        f"{session.settings.compare_fail:g} points")
    if session.settings.strict:
        from .soundness import check

        findings = check(list(session.results.values()) + [result])
        problems += [f"soundness check {f.check}: {f.message}" for f in findings if result.case_id in f.cells]
    if problems and report.passed:
        report.outcome = "failed"
        report.longrepr = "\n".join(problems)
        result.passed = False
    skipped = next((v for k, v in report.user_properties if k == SKIPPED_PROPERTY), None)
    if skipped is not None:
        session.merged_skipped = sorted(set(session.merged_skipped) | set(json.loads(skipped)))
    session.record(result)


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: a worker finished (its cell count rides on workeroutput) or crashed."""
    hac = node.config.stash.get(SESSION_KEY, None)
    if hac is None:
        return
    output = getattr(node, "workeroutput", None) or {}
    hac.expected_cells = max(hac.expected_cells, int(output.get("hac_expected_cells", 0)))
    if error:
        worker = getattr(getattr(node, "gateway", None), "id", "?")
        hac.crashed.append(worker)
        hac.notes.append(f"xdist worker {worker} crashed ({str(error).strip()[:200]}): the run is incomplete")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    hac = session.config.stash.get(SESSION_KEY, None)
    if hac is None or not hac.write_files or not hac.results:
        return
    interrupted = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
    # Cells count as finished when their test ran to the end, skipped ones included: a skip is a
    # decision, not a loss. Several tests may share one cell, so results can be fewer than tests.
    complete = (not interrupted and len(hac.finished_cells) >= hac.expected_cells and not session.shouldstop
                and not hac.crashed)
    report = hac.report(complete)
    session.config.hook.pytest_hac_update_report(config=session.config, report=report)
    hac.notes = report.notes
    hac.finish(complete=complete)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    hac = config.stash.get(SESSION_KEY, None)
    if hac is None or not hac.write_files or not hac.results:
        return
    from tabulate import tabulate

    from .report import matrix_table

    headers, body = matrix_table(list(hac.results.values()))
    terminalreporter.section("pytest-hac")
    terminalreporter.write_line(f"model {hac.settings.model} · {len(hac.results)} cells · gate rule {hac.settings.gate}")
    terminalreporter.write_line(tabulate(body, headers, tablefmt="simple"))
    if hac.write_error:
        terminalreporter.write_line(f"pytest-hac: {hac.write_error}", red=True)
    for note in hac.notes:
        terminalreporter.write_line(f"pytest-hac: {note}", yellow=True)
    for kind, path in hac.report_paths.items():
        terminalreporter.write_line(f"report ({kind}): {path}")
