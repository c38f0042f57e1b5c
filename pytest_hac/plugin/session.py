"""The session object pytest-hac registers as a plugin: its methods are the hooks of a run.

Like pytest-benchmark's ``BenchmarkSession`` and pytest-xdist's ``DSession``, one
:class:`HacPlugin` is created in ``pytest_configure`` and registered with the plugin
manager. It only translates between pytest and the library's
:class:`~pytest_hac.run.HacRun`: a cell's verdict is decided inside the cell's own test
call (``pytest_runtest_call``) by :func:`pytest_hac.core.judge.verdict.decide`, so pytest's outcome,
JUnit, the terminal, the report and the exit status carry one verdict; the controller (also
under xdist) only records it.
"""
from __future__ import annotations

import hashlib
import json
import warnings

import pytest
import torch

from ..core.cells.cases import check_unique
from ..core.cells.dependencies import work_groups
from ..core.judge.result import GateFailure, Result
from ..core.judge.verdict import Reason, ReasonKind
from ..errors import BudgetWarning, HacError
from ..report.schema import Cell, Report, Scope
from ..run import HacRun
from .cells import CellMessage, is_cell, test_id

PLUGIN_NAME = "hac-session"
RESULT_KEY = pytest.StashKey[Result]()
CELL_KEY = pytest.StashKey[Cell]()
REFERENCES_KEY = pytest.StashKey[list]()
#: Images the cell's call attacked (shared attacks count where they ran first): the run's attack work.
WORK_KEY = pytest.StashKey[int]()
#: user_property that carries a decided cell from an xdist worker to the controller.
PROPERTY = "hac_cell"
FINISHED_PROPERTY = "hac_cell_finished"


class VerdictFailure(AssertionError):
    """The cell's verdict is failed although its test body passed: the reasons are the message."""


def _test_failure(exc: BaseException) -> Reason:
    if isinstance(exc, GateFailure):
        return Reason(ReasonKind.ASSERTION, str(exc))
    text = str(exc).strip()
    return Reason(ReasonKind.ERROR, f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")


class HacPlugin:
    """The run's pytest side: turns markers into cells, a cell's test into its verdict, the session into a report."""

    def __init__(self, config: pytest.Config, run: HacRun) -> None:
        self.config = config
        self.run = run
        #: (node id, case) of every cell the markers expand to, before any selection (-k, --lf, shards).
        self.universe: list = []
        self.finished: set[str] = set()
        self._data_sent = False
        self.scope = Scope()
        #: The report written at session end (the terminal summary prints it).
        self.final: Report | None = None
        self.error: str | None = None
        #: A marker or its thresholds file could not be expanded (here or on an xdist worker): exit 4.
        self.bad_marker = False
        #: Steps and drifts over the history beyond --hac-fail-drop (they fail the run, not a cell).
        self.trend_drops: list[str] = []

    @property
    def worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def _usage_error(self, exc: HacError) -> pytest.UsageError:
        """A usage error, said once; the report on disk says it too."""
        self.error = f"usage error: {exc}"
        return pytest.UsageError(f"pytest-hac: {exc}")

    # --- the start and collection -------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        try:
            self.run.start(mark=not (self.config.option.collectonly or self.config.getoption("hac_plan", False)))
        except HacError as exc:
            raise pytest.UsageError(f"pytest-hac: {exc}") from None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "hac_case" not in metafunc.fixturenames:
            return
        marker = metafunc.definition.get_closest_marker("hac")
        if marker is None:
            pytest.fail(f"{metafunc.definition.nodeid} uses hac_case but has no @pytest.mark.hac(...) marker",
                        pytrace=False)
        try:
            cases = self.run.apply_thresholds(_expand(marker, self.run, metafunc.definition),
                                              metafunc.definition.path.parent)
            error = None
        except HacError as exc:
            error = f"{USAGE} {metafunc.definition.nodeid}: {exc}"
        if error is not None:  # outside the except block: said once, without "During handling..."
            # a collection error of its module (each module's bad marker is named, xdist workers' too); the run's
            # exit status is pytest's usage error (pytest_sessionfinish)
            pytest.fail(error, pytrace=False)
        self.universe += [(f"{metafunc.definition.nodeid}[{c.id}]", c) for c in cases]
        metafunc.parametrize("hac_case", cases, ids=[c.id for c in cases])

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = str(report.longrepr).strip().splitlines()
            self.bad_marker |= any(USAGE in line for line in text)
            if self.error is None:
                self.error = f"collection error in {report.nodeid or 'the session'}: {text[-1] if text else ''}"

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        try:
            self.run.check_thresholds()
            check_unique(self.universe)
        except HacError as exc:
            raise self._usage_error(exc) from None
        if self.run.settings.shard is not None:
            index, count = self.run.settings.shard
            cells = sorted(item.nodeid for item in items if is_cell(item))
            keep = {nodeid for i, nodeid in enumerate(cells) if i % count == index - 1}
            dropped = [it for it in items if is_cell(it) and it.nodeid not in keep]
            if dropped:
                config.hook.pytest_deselected(items=dropped)
                items[:] = [it for it in items if it not in dropped]
        groups = work_groups([case for _, case in self.universe])
        for item in items:  # for `-n N --dist loadgroup`: cells that share attack work run on one worker
            if is_cell(item) and hasattr(item, "callspec"):
                item.add_marker(pytest.mark.xdist_group(groups[item.callspec.params["hac_case"].identity]))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The run's scope and plan, after every selection (-k, -m, --lf, node ids, shards) has happened;
        then the model and data, once: a failure there is one usage error, not one failure per cell."""
        if self.error is not None and self.error.startswith("usage error"):  # raised above: nothing will run
            return
        cells = [item for item in session.items if is_cell(item)]
        self.scope = _scope(dict(self.universe), len(cells), self.run.settings.shard)
        self.run.set_scope(self.scope)
        grouped = any("@hac-" in item.nodeid for item in cells)
        if getattr(self.config.option, "loadgroup", False) and cells and not grouped:
            warnings.warn(pytest.PytestWarning(
                "pytest-hac: --dist loadgroup did not group the cells (pytest-xdist's loadgroup does not work with "
                "pytest 9.2, pytest-xdist#1386): cells that share an attack may each run it on another worker. "
                "Install pytest<9.2 for the grouping"))
        selected = [item.callspec.params["hac_case"] for item in cells if hasattr(item, "callspec")]
        self.run.count_thresholds(selected)
        self.run.plan(selected, [case for _, case in self.universe])
        if cells and not self.config.option.collectonly and not self.worker:
            try:
                self.run.loaded.prepare()
            except HacError as exc:
                raise self._usage_error(exc) from None

    # --- running: the verdict is final when the cell's test ends --------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        if not is_cell(item) or not hasattr(item, "callspec"):
            return (yield)
        case = item.callspec.params["hac_case"]
        work = self.run.attack_work()
        try:
            outcome = yield
        except (pytest.skip.Exception, pytest.xfail.Exception, pytest.exit.Exception, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._decide(item, case, _test_failure(exc), work)
            raise
        cell = self._decide(item, case, None, work)
        if cell is not None and cell.failed:
            __tracebackhide__ = True
            raise VerdictFailure("\n".join(f"{cell.case_id}: {r}" for r in cell.reasons))
        return outcome

    def _decide(self, item: pytest.Item, case, failure: Reason | None, work: int) -> Cell | None:
        """Evaluate the cell if its body did not, decide it with everything it depends on, stash it."""
        result = item.stash.get(RESULT_KEY, None)
        try:
            if result is None:
                if failure is not None:
                    return None  # the body failed before it evaluated: nothing was measured
                result = self.run.evaluate(case)
            cell, references = self.run.decide(test_id(item.nodeid), case, result, failure)
        except HacError as exc:
            if failure is not None:
                return None
            pytest.fail(f"pytest-hac: {exc}", pytrace=False)
        item.stash[CELL_KEY] = cell
        item.stash[REFERENCES_KEY] = references
        item.stash[WORK_KEY] = self.run.attack_work() - work
        return cell

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if not is_cell(item):
            return report
        if report.when == "teardown":
            report.user_properties.append((FINISHED_PROPERTY, True))  # ran to the end: passed, failed or skipped
        cell = item.stash.get(CELL_KEY, None)
        if cell is not None and report.when == "call":
            excinfo = call.excinfo
            if excinfo is not None and isinstance(excinfo.value, VerdictFailure):
                report.longrepr = str(excinfo.value)  # the reasons, without the plugin's own frames
            elif excinfo is not None:
                said = str(excinfo.value)
                extra = [f"{cell.case_id}: {r}" for r in cell.reasons
                         if r.kind not in (ReasonKind.ASSERTION, ReasonKind.ERROR) and r.message not in said]
                if extra:
                    report.sections.append(("pytest-hac: further reasons this cell failed", "\n".join(extra)))
            # what the data is (image hashes included) travels once per worker, with its first cell
            data_info = None
            if self.worker and self.run.loaded.done and not self._data_sent:
                data_info, self._data_sent = self.run.loaded.data_info(), True
            message = CellMessage(cell=cell, references=item.stash.get(REFERENCES_KEY, []),
                                  scope=self.scope, torch_threads=torch.get_num_threads(),
                                  attack_images=item.stash.get(WORK_KEY, 0),
                                  threshold_lines=self.run.threshold_lines + self.run.threshold_warnings,
                                  data_info=data_info)
            report.user_properties.append((PROPERTY, json.dumps(message.to_dict())))
            # on the item too: JUnit XML writes the properties the teardown report carries
            props = [(f"hac_{key}", getattr(cell.result, key)) for key in ("accuracy", "ci_low", "ci_high", "n",
                                                                           "bpp", "psnr")]
            props.append(("hac_verdict", cell.status.value))
            item.user_properties += props
            report.user_properties += props
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """On the controller, for its own and every xdist worker's reports: record, never re-decide."""
        if not self.run.write_files:
            return
        # JUnit XML, --lf and the terminal (their hooks come after this one) name a cell as a run without xdist
        # does, not as --dist loadgroup renamed it on the worker (xdist schedules by index, not by this name)
        report.nodeid = test_id(report.nodeid)
        props = dict(report.user_properties)
        if report.when == "teardown" and FINISHED_PROPERTY in props:
            self.finished.add(test_id(report.nodeid))
        if report.when != "call" or PROPERTY not in props:
            return
        message = CellMessage.from_dict(json.loads(props[PROPERTY]))
        self.run.set_scope(message.scope)
        self.run.record(message.cell, message.references, attack_images=message.attack_images,
                        torch_threads=message.torch_threads, threshold_lines=message.threshold_lines,
                        data_info=message.data_info)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        """xdist controller: a worker finished or crashed."""
        if error:
            worker = getattr(getattr(node, "gateway", None), "id", "?")
            self.run.worker_crashed(worker, str(error))

    # --- the end ------------------------------------------------------------------------------------

    def complete(self, session: pytest.Session, exitstatus: int) -> bool:
        """Every selected cell ran to the end (skipped ones too: a skip is a decision, not a loss)."""
        interrupted = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
        return (not interrupted and not session.shouldstop and not self.run.crashed
                and len(self.finished) >= self.run.scope.selected)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.bad_marker:  # a bad marker is the user's to fix, as a bad option is: pytest's usage error
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
        run = self.run
        run.close()
        if not run.write_files:
            return
        if exitstatus == pytest.ExitCode.INTERNAL_ERROR and self.error is None:
            self.error = "internal error (pytest's output has the traceback)"
        if exitstatus == pytest.ExitCode.USAGE_ERROR and self.error is None:
            self.error = "usage error (pytest's output says which)"
        if self.error is not None and not run.cells:
            self.final = run.fail(self.error)
            return
        if not run.cells:
            stopped = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
            if not (stopped or session.shouldstop or run.crashed or self.finished or self.scope.selected):
                run.files.abandon()  # no cell in this session (unit tests only, -k elsewhere): reports as they were
            return
        report = run.report(self.complete(session, exitstatus), error=self.error)
        self.config.hook.pytest_hac_update_report(config=self.config, report=report)
        self.final = run.finish(report)
        self.trend_drops = run.trend_failures(report)
        # a run-level gate over the history; and a nightly whose report could not be written is no green one
        if (self.trend_drops or run.files.error) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter, exitstatus: int, config: pytest.Config) -> None:
        from .terminal import terminal_summary

        terminal_summary(terminalreporter, self.run, self.final)
        for drop in self.trend_drops:
            terminalreporter.write_line(f"pytest-hac: FAILED (--hac-fail-drop): {drop}", red=True)


def _scope(universe: dict, selected: int, shard: tuple[int, int] | None) -> Scope:
    """The run's scope: ``selected`` of the collected cells (``universe``: node id -> case), and the fingerprints
    of the cell list (every cell's full identity) and of the thresholds they are held to, for merge."""
    everything = sorted(universe)

    def digest(lines: list[str]) -> str:
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]

    return Scope(selected=selected, total=len(everything), shard=shard,
                 cells_hash=digest([f"{n}\t{universe[n].identity}" for n in everything]),
                 thresholds_hash=digest([f"{n}\t{universe[n].threshold!r}" for n in everything]))


#: How a bad marker's collection error starts (the controller recognises it, from xdist workers too).
USAGE = "pytest-hac usage error:"


def _expand(marker: pytest.Mark, run: HacRun, definition: pytest.Function) -> list:
    """The marker's cases; an implausible budget is the test's warning, located at the test."""
    from ..core.cells.cases import expand

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BudgetWarning)
        cases = expand(marker.kwargs, run.settings.marker_defaults)
    for w in caught:
        if issubclass(w.category, BudgetWarning):
            definition.warn(w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return cases
