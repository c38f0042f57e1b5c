"""A run's files: yesterday's complete report set aside at the start (it stays as ``<stem>.previous.*``),
the report rewritten atomically as cells finish, an ERROR report when the run fails, and at the end the
plot, the baseline, the history entry and GitHub's step summary. A folder that cannot be written at the
start is a usage error (:class:`HacError`); a write that fails later never stops a run: the failure is
kept in :attr:`ReportFiles.error`, and the run's exit status is not 0."""
from __future__ import annotations

import warnings
from pathlib import Path

from ..errors import HacError
from ..report.baselines import save_baseline
from ..report.history import record_history
from ..report.output import discard, restore_aside, set_aside, write_report
from ..report.schema import Report
from ..report.summary import append_step_summary, step_summary
from ..report.trend import Trend
from ..settings import Settings


class ReportFiles:
    """Where a run's reports go (``settings.report_dir``); with ``write=False`` (an xdist worker) nothing is written."""

    def __init__(self, settings: Settings, *, write: bool = True) -> None:
        self.settings = settings
        self.write = write
        #: The files written last, by kind (json, md, html, plot, baseline, history).
        self.paths: dict[str, Path] = {}
        self.error: str | None = None
        #: Whether the start set a complete report aside as ``<stem>.previous.*``.
        self._aside = False
        #: The stem the in-progress report was written under at the start.
        self._marker: str | None = None

    def start(self, rep: Report) -> None:
        """Set a complete ``<stem>.*`` aside as ``<stem>.previous.*`` and write ``rep`` (INCOMPLETE, no cell yet)
        instead. Raises :class:`HacError` naming the folder when it cannot be written."""
        if not self.write:
            return
        folder = self.settings.report_dir
        try:
            self._aside = set_aside(folder, rep.stem)
            self.paths = write_report(rep, folder)
        except OSError as exc:
            self.write = False  # nothing more to try; the usage error says where
            raise HacError(f"cannot write reports to folder {folder} ({exc.strerror or exc}): make it writable "
                           f"or pass --hac-report-dir=DIR") from None
        self._marker = rep.stem

    def rewrite(self, rep: Report, *, plot: bool = False, trend: Trend | None = None,
                gallery: dict | None = None) -> None:
        """Write ``rep`` (JSON, Markdown, HTML; the plot with ``plot``; the trend's sections), atomically."""
        if not self.write:
            return
        try:
            self.paths = write_report(rep, self.settings.report_dir, plot=plot, trend=trend, gallery=gallery)
            self.error = None
        except OSError as exc:  # disk full, read-only folder: keep going, say so at the end
            self.error = f"could not write reports to {self.settings.report_dir}: {exc}"
            warnings.warn(f"pytest-hac: {self.error}", stacklevel=3)

    def failed(self, rep: Report) -> None:
        """The run ended without a verdict: ``rep`` says ERROR, here and in the step summary."""
        if not self.write:
            return
        self.rewrite(rep)
        self._put_back(rep)
        append_step_summary(step_summary(rep, self.settings.summary))

    def finish(self, rep: Report, *, trend: Trend | None = None, gallery: dict | None = None) -> None:
        """The final report with the plot, the baseline if asked, the history entry and the step summary.

        A selection (``-k``, node ids) writes ``<model>.selection.*`` and puts the full report set aside
        at the start back in place; any other run replaces it.
        """
        if not self.write:
            return
        s = self.settings
        self.rewrite(rep, plot=True, trend=trend, gallery=gallery)
        self._put_back(rep)
        if rep.cells and s.save_baseline is not None:
            try:
                self.paths["baseline"] = save_baseline(rep, s.save_baseline.parent, s.save_baseline.stem)
            except OSError as exc:
                self.error = f"could not save baseline in {s.save_baseline.parent}: {exc}"
        if s.history is not None:
            try:
                if (entry := record_history(rep, s.history)) is not None:
                    self.paths["history"] = entry
            except OSError as exc:
                self.error = f"could not add the run to the history in {s.history}: {exc}"
        if rep.cells:
            append_step_summary(step_summary(rep, s.summary))

    def abandon(self) -> None:
        """The session had no cell (other tests only, or a selection without one): the report it set aside
        at the start goes back, and its own INCOMPLETE marker goes."""
        if not self.write or self._marker is None:
            return
        discard(self.settings.report_dir, self._marker)
        if self._aside:
            restore_aside(self.settings.report_dir, self._marker, keep=True)
        self._aside, self._marker = False, None

    def _put_back(self, rep: Report) -> None:
        """A selection's report has its own name: the full report set aside at the start comes back."""
        if self._marker is None:
            return
        selection = rep.stem != self._marker
        if selection:
            discard(self.settings.report_dir, self._marker)
        if self._aside:
            restore_aside(self.settings.report_dir, self._marker, keep=selection)
        self._aside = False
