"""One run without pytest: the cells measured, decided and recorded, and the report they make.

:class:`HacRun` is what the pytest plugin drives and what a notebook can use directly:
``run.evaluate(case)`` measures (memoized per cell), ``run.decide(test, case, result)`` gathers what
the cell's verdict depends on (the cells the soundness checks compare it with, evaluated on demand;
the baseline) and asks :func:`pytest_hac.core.judge.verdict.decide`, and ``run.record(cell)`` keeps the
cell and rewrites the report at once. It never re-decides a recorded cell. Loading is
:class:`.loaded.Loaded`'s job, the files :class:`.files.ReportFiles`'.
"""
from __future__ import annotations

import platform
import sys
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import torch

from ..core.cells.cases import Case
from ..core.cells.dependencies import dependencies
from ..core.engine.engine import Engine
from ..core.engine.gallery import combine
from ..core.judge.comparison import Comparison, compare, version_drift
from ..core.judge.result import Result
from ..core.judge.soundness import check as soundness_check
from ..core.judge.thresholds import ThresholdFiles
from ..core.judge.verdict import Reason, decide
from ..errors import HacError
from ..report.baselines import load_baseline
from ..report.notes import baseline_gaps, weakened_attacks
from ..report.provenance import dataset_name, default_data, upscaling_note, versions
from ..report.schema import Cell, Report, Scope, implicated
from ..report.trend import Trend, trend_of
from ..settings import Settings
from .loaded import Loaded
from .report_files import ReportFiles


class HacRun:
    """One run's evaluation state. Loads nothing until asked; writes reports only with ``write_files``."""

    def __init__(self, settings: Settings, *, write_files: bool = True) -> None:
        self.settings = settings
        self.loaded = Loaded(settings)
        self.files = ReportFiles(settings, write=write_files)
        self.cells: dict[str, Cell] = {}
        #: Results the checks compared cells with that are not cells of this run (by case id).
        self.references: dict[str, Result] = {}
        self.scope = Scope()
        self.notes: list[str] = []
        self.thresholds = ThresholdFiles(settings.model, settings.thresholds, strict=settings.strictness == "strict",
                                         allow_unused=settings.strictness == "lenient")
        #: What the report says of the thresholds files (set at collection; under xdist sent by a worker).
        self.threshold_lines: list[str] = []
        self.threshold_warnings: list[str] = []
        #: Every cell collected in the session (before any selection): where dependencies are found.
        self.universe: list[Case] = []
        self.baseline: Report | None = None
        #: The HTML page's gallery (core.gallery's JSON), gathered from the cells (xdist workers' too).
        self.gallery: dict = {}
        self.crashed: list[str] = []
        self._results: dict[str, Result] = {}
        #: What the recorded cells' processes said: images attacked (summed), torch threads, what the data is.
        self._attack_images = 0
        self._threads: int | None = None
        self._worker_data: dict = {}
        self._trend: tuple[Report, Trend] | None = None

    @cached_property
    def versions(self) -> dict[str, str]:
        """The versions this run reports (read once: every cell rewrites the report, and reading installed
        packages' metadata takes milliseconds each time)."""
        return versions()

    @property
    def write_files(self) -> bool:
        return self.files.write

    @property
    def engine(self) -> Engine:
        """The engine (loads the model and data on first use)."""
        return self.loaded.engine

    # --- the start ----------------------------------------------------------------------------------

    def start(self, *, mark: bool = True) -> None:
        """Set yesterday's report aside (so no stale report survives this run) and load the baseline.

        ``mark=False`` for runs that evaluate nothing (``--collect-only``, ``--hac-plan``): they leave reports alone.
        Raises :class:`HacError` for a baseline that is required and missing (after writing a report that says so).
        """
        s = self.settings
        if mark:
            self.scope = Scope(shard=s.shard)
            self.files.start(self.report())  # "INCOMPLETE: no cell finished yet" until the first cell
        if s.compare is None:
            return
        required = s.fail_drop is not None and s.strictness != "lenient"
        try:
            self.baseline = load_baseline(s.compare.parent, s.compare.stem, model=s.model,
                                          dataset=dataset_name(default_data(s)), required=required)
        except HacError as exc:
            self.fail(f"usage error: {exc}")
            raise
        if self.baseline is None:
            self.notes.append(f"no baseline {s.compare.stem!r} in {s.compare.parent}: nothing compared "
                              f"(save one with --hac-save-baseline)")
        elif drift := version_drift(self.baseline.meta.get("versions", {}), self.versions):
            self.notes.append("baseline recorded with other versions: " + ", ".join(drift))

    def set_scope(self, scope: Scope) -> None:
        """Which cells this session runs of how many (set after collection, or by a worker's message)."""
        self.scope = scope

    def plan(self, cases: list[Case], universe: list[Case] | None = None) -> None:
        """The cases this run will evaluate (and ``universe``, every case collected), so the engine keeps
        what they and the cells their verdicts depend on share, and drops the rest."""
        if universe is not None:
            self.universe = list(universe)
        needed = list(cases)
        for case in cases:
            needed += dependencies(case, self.universe)
        self.loaded.plan(list(dict.fromkeys(needed)))

    # --- measuring and deciding ---------------------------------------------------------------------

    def evaluate(self, case: Case) -> Result:
        """The cell's result, evaluated once per session whoever asks (its test, or a cell that depends on it),
        holding ``case`` (its id and threshold) under the run's gate rule."""
        result = self._results.get(case.identity)
        if result is None:
            result = self.engine.evaluate(case)
            self._results[case.identity] = result
        return replace(result, case=self.gated(case))

    def gated(self, case: Case) -> Case:
        """``case`` held to the run's ``--hac-gate``."""
        return case if case.rule == self.settings.gate else replace(case, rule=self.settings.gate)

    def compare(self, result: Result, parts: list[Result] | None = None) -> Comparison | None:
        """The cell against the baseline (None without a baseline or without the cell in it)."""
        if self.baseline is None:
            return None
        hashes = list(self.loaded.dataset.content_hashes) if self.loaded.done else self._worker_data.get(
            "image_hashes")
        return compare(result, self.baseline.results, self.settings.fail_drop, parts=parts,
                       hashes=(self.baseline.meta.get("image_hashes"), hashes))

    def decide(self, test: str, case: Case, result: Result,
               test_failure: Reason | None = None) -> tuple[Cell, list[Result]]:
        """The cell's verdict, final, and the results of the cells it depends on: every one is evaluated
        now (memoized), so the same verdict comes out whatever ran before, in which order, in which shard
        or selection."""
        s = self.settings
        # the test's gate holds whatever its body evaluated: a body cannot loosen its marker's threshold
        result = replace(result, case=self.gated(replace(result.case, threshold=case.threshold)))
        deps = [self.evaluate(d) for d in dependencies(case, self.universe)]
        for dep in deps:
            self.references.setdefault(dep.case_id, dep)
        comparison = self.compare(result, deps if case.parts else None)
        findings = implicated(soundness_check([result] + deps), result)
        verdict = decide(result, test_failure=test_failure, comparison=comparison, compare_fail=s.fail_drop,
                         baseline=None if s.compare is None else s.compare.stem, findings=findings,
                         soundness=s.soundness)
        return Cell(test=test, result=result, verdict=verdict, comparison=comparison, findings=findings), deps

    # --- recording ----------------------------------------------------------------------------------

    def record(self, cell: Cell, references: list[Result] = (), *, attack_images: int = 0,
               torch_threads: int | None = None, threshold_lines: list[str] | None = None,
               data_info: dict | None = None) -> None:
        """Keep ``cell`` (decided already) and rewrite the report at once, so an interruption loses nothing.

        The keywords are what the process that evaluated it says beside the cell (under xdist the
        controller loads nothing): images its attack added, its torch threads, the thresholds lines
        that applied, what the data is.
        """
        self.cells[cell.test] = cell
        for ref in references:
            self.references.setdefault(ref.case_id, ref)
        self._attack_images += attack_images
        self._threads = torch_threads or self._threads
        if threshold_lines is not None and not self.thresholds.use:  # xdist: the controller collected nothing
            self.threshold_lines, self.threshold_warnings = list(threshold_lines), []
        if data_info:
            self._worker_data = data_info
        self.flush(complete=False)

    def add_gallery(self, part: dict) -> None:
        """A cell's gallery pictures (:func:`pytest_hac.core.engine.gallery.combine`), from this process or a worker."""
        combine(self.gallery, part)

    def add_note(self, note: str) -> None:
        """A line for the report's notes."""
        self.notes.append(note)

    def worker_crashed(self, worker: str, error: str) -> None:
        self.crashed.append(worker)
        self.notes.append(f"xdist worker {worker} crashed ({error.strip()[:200]}): the run is incomplete")

    def attack_work(self) -> int:
        """Images attacked so far by this process's cells (soundness probes apart)."""
        return self.loaded.attack_images()

    # --- thresholds files ---------------------------------------------------------------------------

    def apply_thresholds(self, cases: list[Case], directory: Path) -> list[Case]:
        """``cases`` with the thresholds file's values (the file wins over the marker), held to the run's gate rule."""
        if self.settings.update_thresholds is not None:  # recording thresholds: measured, not gated (update.py writes)
            cases = [replace(c, threshold=None) for c in cases]
        else:
            cases = self.thresholds.apply(cases, directory)
        return [self.gated(c) for c in cases]

    def check_thresholds(self) -> None:
        """After collection: sets :attr:`threshold_lines` and :attr:`threshold_warnings` (see
        :meth:`ThresholdFiles.check <pytest_hac.core.judge.thresholds.ThresholdFiles.check>`, which may raise)."""
        self.threshold_lines, self.threshold_warnings = self.thresholds.check()

    def count_thresholds(self, selected: list[Case]) -> None:
        """Once the selection is known: the thresholds lines count the cells this run runs, not all collected."""
        if self.thresholds.use:
            self.threshold_lines = self.thresholds.lines({c.id for c in selected})

    # --- the report -----------------------------------------------------------------------------------

    def report(self, complete: bool = False, error: str | None = None) -> Report:
        s = self.settings
        if self.loaded.done:
            data = self.loaded.dataset
            name, n, ids, info = data.name, len(data), list(data.ids), self.loaded.data_info()
        else:  # results merged from xdist workers: the controller never loaded the data
            first = next(iter(self.cells.values()), None)
            name, n, ids = (dataset_name(default_data(s)), first.result.n if first else 0,
                            list(first.result.ids) if first else [])
            info = self._worker_data
        results = list({c.case_id: c.result for c in self.cells.values()}.values())
        refs = [r for i, r in sorted(self.references.items()) if i not in {c.case_id for c in self.cells.values()}]
        meta = {"versions": self.versions, "machine": platform.platform(), "python": sys.version.split()[0],
                "torch_threads": self._threads or torch.get_num_threads(), "soundness_mode": s.soundness,
                "settings": s.fingerprint,
                "thresholds": self.threshold_lines + self.threshold_warnings,
                "attack_images": self._attack_images, "probe_seconds": round(self.loaded.probe_seconds(), 3),
                **{k: info.get(k) for k in ("image_size", "preprocessing", "labels", "image_hashes")}}
        notes = (list(self.notes) + weakened_attacks([c.result for c in self.cells.values()])
                 + upscaling_note(info, n, s.model) + baseline_gaps(results, self.baseline))
        return Report(model=s.model, dataset=name, n=n, device=s.device, seed=s.seed, gate_rule=s.gate, ids=ids,
                      cells=list(self.cells.values()), complete=complete, scope=self.scope,
                      skipped_images=list(info.get("skipped", [])), meta=meta, notes=notes, references=refs,
                      error=error)

    def flush(self, *, complete: bool) -> Report:
        rep = self.report(complete)
        self.files.rewrite(rep)
        return rep

    def close(self) -> None:
        """Free what the run holds on disk (the engine's scratch folder)."""
        self.loaded.close()

    def fail(self, error: str) -> Report:
        """The run ended without a verdict (usage, collection or internal error): a report that says so,
        with the error in one line, and the same in GitHub's step summary."""
        rep = self.report(complete=False, error=" ".join(error.split())[:500])
        self.files.failed(rep)
        return rep

    def trend(self, rep: Report) -> Trend | None:
        """With ``--hac-history``: the trend over the history and this run (the Markdown's and the page's
        section, and ``--hac-fail-drop``'s steps and drifts), read once per report."""
        if self.settings.history is None or not rep.whole:
            return None
        if self._trend is None or self._trend[0] is not rep:
            self._trend = (rep, trend_of(self.settings.history, rep))
        return self._trend[1]

    def trend_failures(self, rep: Report) -> list[str]:
        """``--hac-fail-drop``: the newest run's significant steps and the window's drifts larger than its margin,
        a line each (none: the run passes)."""
        from ..report.trend_view import trend_failures

        trend = None if self.settings.fail_drop is None else self.trend(rep)
        return [] if trend is None else trend_failures(trend, self.settings.fail_drop)

    def finish(self, rep: Report) -> Report:
        """Write the final files (:meth:`ReportFiles.finish <.files.ReportFiles.finish>`)."""
        self.files.finish(rep, trend=self.trend(rep) if self.write_files else None, gallery=self.gallery)
        return rep
