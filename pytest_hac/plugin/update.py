"""``--hac-update-thresholds``: after the cells ran, write their thresholds beside their tests and say which.

The values and the file editing are the library's (:mod:`pytest_hac.core.judge.thresholds`); this
plugin only finds each cell's file (``--hac-thresholds``, else ``hac_thresholds.toml`` beside the
test module), runs before the report is written (so the report notes what was written) and prints
the entries in the terminal summary. An interrupted run writes nothing.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ..core.judge.thresholds import threshold_of, update_file
from ..core.judge.verdict import ReasonKind
from ..errors import HacError
from ..formats import THRESHOLDS_FILE
from ..run import HacRun


class ThresholdsWriter:
    """Controller-side plugin of ``--hac-update-thresholds``."""

    def __init__(self, config: pytest.Config, run: HacRun) -> None:
        self.config = config
        self.run = run
        self.lines: list[str] = []
        #: Cells given no threshold, each with why.
        self.skipped: list[str] = []
        self.failed = False
        #: Cells that got no threshold: measured at about 0, where a threshold gates nothing.
        self.ungated: list[str] = []

    def files(self) -> dict[Path, dict[str, float]]:
        """Per thresholds file, the cells of the tests it serves and their new thresholds. A cell a soundness
        finding flagged (failed, or warned of under ``--hac-soundness=warn``) gets none: its number measures a
        broken evaluation, and a gate recorded from it would pass the same broken evaluation from then on."""
        s = self.run.settings
        out: dict[Path, dict[str, float]] = {}
        for cell in sorted(self.run.cells.values(), key=lambda c: c.case_id):
            flagged = [r for r in (*cell.reasons, *cell.verdict.warnings) if r.kind is ReasonKind.SOUNDNESS]
            if flagged:
                check = flagged[0].message.split(":")[0].replace("its part ", "part ")
                self.skipped.append(f"{cell.case_id}: not recorded, a soundness finding flags it ({check})")
                continue
            module = self.config.rootpath / cell.test.split("::")[0]
            path = s.thresholds or module.parent / THRESHOLDS_FILE
            value = threshold_of(cell.result.accuracy, s.update_thresholds)
            if value is None:
                self.ungated.append(f"{cell.case_id} ({cell.result.accuracy:.2f})")
                continue
            out.setdefault(path, {})[cell.case_id] = value
        return out

    @pytest.hookimpl(tryfirst=True)  # before the session object writes the final report
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR) or session.shouldstop:
            self.lines.append("the run stopped early: no thresholds were written")
            return
        for path, values in self.files().items():
            try:
                written = update_file(path, self.run.settings.model, values)
            except HacError as exc:
                self.lines.append(f"thresholds not written: {exc}")
                self.failed = True
                continue
            n = next(iter(self.run.cells.values())).result.n
            note = (f"--hac-update-thresholds wrote {len(written)} thresholds (measured accuracy on these {n} images "
                    f"- {self.run.settings.update_thresholds:g}, rounded down) to {path}")
            self.run.add_note(note)
            self.lines += [note] + [f"  {line}" for line in written]
        if self.skipped:
            note = f"--hac-update-thresholds recorded no threshold for {len(self.skipped)} flagged cell(s)"
            self.run.add_note(note + ": " + "; ".join(self.skipped))
            self.lines += [note] + [f"  {line}" for line in self.skipped]
        if self.ungated:
            note = (f"--hac-update-thresholds wrote no threshold for {len(self.ungated)} cell(s) measured at about 0, "
                    f"where a threshold gates nothing: " + ", ".join(self.ungated[:10]))
            self.run.add_note(note)
            self.lines.append(note)
        if self.failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for line in self.lines:
            terminalreporter.write_line(f"pytest-hac: {line}", red=self.failed and line.startswith("thresholds not"))
