"""The session object pytest-hac registers as a plugin: its methods are the hooks of a run.

Like pytest-benchmark's ``BenchmarkSession`` and pytest-xdist's ``DSession``, one
:class:`HacPlugin` is created in ``pytest_configure`` and registered with the plugin
manager. It only translates between pytest and the library's
:class:`~pytest_hac.run.HacRun`, which measures, decides and writes the report.
"""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from ..core.cases import expand, work_group
from ..core.result import GateFailure, Result
from ..errors import HacError
from ..report.schema import Report, Scope
from ..run import HacRun, Outcome

PLUGIN_NAME = "hac-session"
RESULT_KEY = pytest.StashKey[Result]()
#: user_properties that carry a cell from an xdist worker to the controller.
PROPERTY = "hac_result"
OUTCOME_PROPERTY = "hac_outcome"
SCOPE_PROPERTY = "hac_scope"
THREADS_PROPERTY = "hac_torch_threads"
DATA_PROPERTY = "hac_data_info"
#: Images attacked while a cell ran (shared attacks count where they ran first): the run's attack work.
WORK_PROPERTY = "hac_attack_images"
FINISHED_PROPERTY = "hac_cell_finished"


def test_id(nodeid: str) -> str:
    """A test's node id without the ``@group`` suffix ``--dist loadgroup`` appends to it."""
    return nodeid.split("@hac-", 1)[0]


def _is_cell(item: pytest.Item) -> bool:
    return "hac_case" in getattr(item, "fixturenames", ())


class HacPlugin:
    """The run's pytest side: turns markers into cells, outcomes into verdicts, the session into a report."""

    def __init__(self, config: pytest.Config, run: HacRun) -> None:
        self.config = config
        self.run = run
        #: Node ids of every cell the markers expand to, before any selection (-k, --lf, shards).
        self.all_cells: list[str] = []
        self.finished: set[str] = set()
        self.scope = Scope()
        #: The report written at session end (the terminal summary prints it).
        self.final: Report | None = None

    # --- collection ---------------------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "hac_case" not in metafunc.fixturenames:
            return
        marker = metafunc.definition.get_closest_marker("hac")
        if marker is None:
            pytest.fail(f"{metafunc.definition.nodeid} uses hac_case but has no @pytest.mark.hac(...) marker",
                        pytrace=False)
        try:
            cases = expand(marker.kwargs, self.run.settings.marker_defaults)
            cases = self.run.apply_thresholds(cases, metafunc.definition.path.parent)
        except HacError as exc:
            pytest.fail(f"{metafunc.definition.nodeid}: {exc}", pytrace=False)
        self.all_cells += [f"{metafunc.definition.nodeid}[{c.id}]" for c in cases]
        metafunc.parametrize("hac_case", cases, ids=[c.id for c in cases])

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        try:
            self.run.threshold_warnings = self.run.check_thresholds()
        except HacError as exc:
            raise pytest.UsageError(f"pytest-hac: {exc}") from None
        if self.run.settings.shard is not None:
            index, count = self.run.settings.shard
            cells = sorted(item.nodeid for item in items if _is_cell(item))
            keep = {nodeid for i, nodeid in enumerate(cells) if i % count == index - 1}
            dropped = [it for it in items if _is_cell(it) and it.nodeid not in keep]
            if dropped:
                config.hook.pytest_deselected(items=dropped)
                items[:] = [it for it in items if it not in dropped]
        for item in items:  # for `-n N --dist loadgroup`: cells sharing an attack run on one worker
            if _is_cell(item) and hasattr(item, "callspec"):
                item.add_marker(pytest.mark.xdist_group(work_group(item.callspec.params["hac_case"])))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The run's scope and plan, after every selection (-k, -m, --lf, node ids, shards) has happened."""
        everything = sorted(set(self.all_cells))
        cells = [item for item in session.items if _is_cell(item)]
        digest = hashlib.sha256("\n".join(everything).encode()).hexdigest()[:16]
        self.scope = Scope(selected=len(cells), total=len(everything), shard=self.run.settings.shard,
                           cells_hash=digest)
        if self.run.write_files:
            self.run.scope = self.scope
        grouped = any("@hac-" in item.nodeid for item in cells)
        if getattr(self.config.option, "loadgroup", False) and cells and not grouped:
            import warnings

            warnings.warn(pytest.PytestWarning(
                "pytest-hac: --dist loadgroup did not group the cells (pytest-xdist's loadgroup does not work with "
                "pytest 9.2, pytest-xdist#1386): cells that share an attack may each run it on another worker. "
                "Install pytest<9.2 for the grouping"))
        self.run.plan([item.callspec.params["hac_case"] for item in cells if hasattr(item, "callspec")])

    # --- running ------------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if not _is_cell(item):
            return report
        if report.when == "teardown":
            report.user_properties.append((FINISHED_PROPERTY, True))  # ran to the end: passed, failed or skipped
        result = item.stash.get(RESULT_KEY, None)
        if result is not None and report.when == "call":
            excinfo = call.excinfo
            gate = excinfo.value if excinfo is not None and isinstance(excinfo.value, GateFailure) else None
            error = None
            if excinfo is not None and gate is None:
                text = str(excinfo.value).strip()
                error = f"{excinfo.typename}: {text.splitlines()[0] if text else ''}"
            outcome = {"passed": report.passed, "gate_threshold": gate.threshold if gate else None,
                       "gate_rule": gate.rule if gate else None, "error": error}
            report.user_properties += [(PROPERTY, json.dumps(result.to_dict())),
                                       (OUTCOME_PROPERTY, json.dumps(outcome)),
                                       (SCOPE_PROPERTY, json.dumps(self._scope_dict())),
                                       (THREADS_PROPERTY, torch.get_num_threads())]
            if hasattr(item.config, "workerinput") and self.run.loaded:
                report.user_properties.append((DATA_PROPERTY, json.dumps(self.run.data_info())))
        return report

    def _scope_dict(self) -> dict:
        s = self.scope
        return {"selected": s.selected, "total": s.total, "shard": s.shard, "cells_hash": s.cells_hash}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Runs on the controller for its own and every xdist worker's reports: one place decides.

        Baseline regressions and soundness findings fail the cell here, before pytest
        counts the outcome; every reason is shown, the test's own failure included.
        """
        if not self.run.write_files:
            return
        props = dict(report.user_properties)
        if report.when == "teardown" and FINISHED_PROPERTY in props:
            self.finished.add(test_id(report.nodeid))
        if report.when != "call" or PROPERTY not in props:
            return
        scope = json.loads(props[SCOPE_PROPERTY])
        scope["shard"] = tuple(scope["shard"]) if scope["shard"] else None
        self.run.scope = Scope(**scope)
        self.run.torch_threads = int(props.get(THREADS_PROPERTY, 0)) or None  # the worker's, under xdist
        self.run.attack_images += int(props.get(WORK_PROPERTY, 0))
        if DATA_PROPERTY in props:
            self.run.worker_data_info = json.loads(props[DATA_PROPERTY])
        result = Result.from_dict(json.loads(props[PROPERTY]))
        cell = self.run.verdict(test_id(report.nodeid), result, Outcome(**json.loads(props[OUTCOME_PROPERTY])))
        extra = self.run.extra_reasons(cell)
        if extra and report.passed:
            report.outcome = "failed"
            report.longrepr = "\n".join(extra)
        elif extra:
            report.sections.append(("pytest-hac: further reasons this cell failed", "\n".join(extra)))
        self.run.record(cell)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        """xdist controller: a worker finished or crashed."""
        if error:
            worker = getattr(getattr(node, "gateway", None), "id", "?")
            self.run.crashed.append(worker)
            self.run.notes.append(f"xdist worker {worker} crashed ({str(error).strip()[:200]}): the run is incomplete")

    # --- the end ------------------------------------------------------------------------------------

    def complete(self, session: pytest.Session, exitstatus: int) -> bool:
        """Every selected cell ran to the end (skipped ones too: a skip is a decision, not a loss)."""
        interrupted = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
        return (not interrupted and not session.shouldstop and not self.run.crashed
                and len(self.finished) >= self.run.scope.selected)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        run = self.run
        run.close()
        if not run.write_files or not run.cells:
            return
        report = run.report(self.complete(session, exitstatus))
        self.config.hook.pytest_hac_update_report(config=self.config, report=report)
        self.final = run.finish(report)
        if run.late_failures and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter, exitstatus: int, config: pytest.Config) -> None:
        run = self.run
        if not run.write_files:
            return
        for warning in run.threshold_warnings:
            terminalreporter.write_line(f"pytest-hac: {warning}", yellow=True)
        if not run.cells:
            return
        from tabulate import tabulate

        from ..report.markdown import matrix_table

        report = self.final or run.report(complete=True)
        headers, body = matrix_table(report)
        terminalreporter.section("pytest-hac")
        terminalreporter.write_line(f"model {run.settings.model} · {len(run.cells)} cells · gate rule "
                                    f"{run.settings.gate} · soundness {run.settings.soundness}")
        terminalreporter.write_line(tabulate(body, headers, tablefmt="simple", disable_numparse=True))
        for line in run.thresholds_lines():
            terminalreporter.write_line(f"thresholds: {line}")
        if run.write_error:
            terminalreporter.write_line(f"pytest-hac: {run.write_error}", red=True)
        for late in run.late_failures:
            terminalreporter.write_line(f"pytest-hac: failed after it passed, on a soundness finding: {late}",
                                        red=True)
        for note in report.notes:
            terminalreporter.write_line(f"pytest-hac: {note}", yellow=True)
        for kind, path in run.report_paths.items():
            terminalreporter.write_line(f"report ({kind}): {path}")
