"""State across a run, without pytest: model, data and engine, the cells recorded, the report.

:class:`HacRun` is what the pytest plugin drives and what a notebook can use directly:
``run.evaluate(case)`` measures (memoized per cell), ``run.decide(test, case, result)`` gathers what
the cell's verdict depends on (the cells the soundness checks compare it with, evaluated on demand;
the baseline) and asks :func:`pytest_hac.core.verdict.decide`, and ``run.record(cell)`` keeps the
cell and rewrites the report at once. It never re-decides a recorded cell.
"""
from __future__ import annotations

import platform
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from .core.cases import Case
from .core.engine import Engine
from .core.gates import Comparison, compare, describe_attack, version_drift
from .core.result import GATE_RULES, Result
from .core.soundness import check as soundness_check
from .core.soundness import dependencies
from .core.soundness import status as soundness_status
from .core.threshold_files import ThresholdFiles
from .core.verdict import Reason, decide
from .data import Dataset, load_dataset
from .errors import HacError
from .io.cache import DiskCache, Store
from .models import Classifier, describe_normalization, get_model, restrict
from .report.baselines import load_baseline, save_baseline
from .report.history import record_history
from .report.output import discard, restore_aside, set_aside, write_report
from .report.provenance import dataset_name, default_data, upscaling_note, versions
from .report.schema import Cell, Report, Scope
from .report.summary import append_step_summary, step_summary
from .report.trend import Trend, trend_of
from .settings import Settings

#: Label mappings up to this many classes are written into the report in full.
MAPPING_SHOWN = 50
class HacRun:
    """One run's evaluation state. Loads nothing until asked; writes reports only with ``write_files``."""

    def __init__(self, settings: Settings, *, write_files: bool = True) -> None:
        self.settings = settings
        self.write_files = write_files
        self.cells: dict[str, Cell] = {}
        #: Results the checks compared cells with that are not cells of this run (by case id).
        self.references: dict[str, Result] = {}
        self.scope = Scope()
        self.report_paths: dict[str, Path] = {}
        self.write_error: str | None = None
        self.notes: list[str] = []
        #: Images attacked by the cells' attacks (soundness probes apart), summed over xdist workers.
        self.attack_images = 0
        #: Under xdist the controller never loads the data: workers send what the report says of it.
        self.worker_data_info: dict = {}
        self.crashed: list[str] = []
        #: The HTML page's gallery (core.gallery's JSON), gathered from the cells (xdist workers' too).
        self.gallery: dict = {}
        #: torch threads of the process that evaluated (an xdist worker's, not the controller's).
        self.torch_threads: int | None = None
        self.thresholds = ThresholdFiles(settings.model, settings.thresholds, strict=settings.strict,
                                         allow_unused=settings.allow_unused_thresholds)
        #: What the report says of the thresholds files (set at collection; under xdist sent by a worker).
        self.threshold_lines: list[str] = []
        self.threshold_warnings: list[str] = []
        self._loaded: tuple[Classifier, Dataset] | None = None
        self._load_error: str | None = None
        self._engine: Engine | None = None
        self._plan: list[Case] | None = None
        #: Every cell collected in the session (before any selection): where dependencies are found.
        self.universe: list[Case] = []
        self._results: dict[str, Result] = {}
        self.baseline: Report | None = None
        self._set_aside: list[Path] = []
        #: The stem the in-progress report was written under at the start.
        self._marker: str | None = None
        self._trend: tuple[Report, Trend] | None = None

    # --- the start ----------------------------------------------------------------------------------

    def start(self, *, mark: bool = True) -> None:
        """Set yesterday's report aside (so no stale report survives this run) and load the baseline.

        ``mark=False`` for runs that evaluate nothing (``--collect-only``, ``--hac-plan``): they leave reports alone.

        Raises :class:`HacError` for a baseline that is required and missing (after writing a report
        that says so).
        """
        s = self.settings
        if self.write_files and mark:
            self.scope = Scope(shard=s.shard)
            stem = Report(model=s.model, dataset="", n=0, device=s.device, seed=s.seed, gate_rule=s.gate,
                          scope=self.scope).stem
            self._marker = stem
            self._set_aside = set_aside(s.report_dir, stem)
            self._write(self.report(), plot=False)  # "INCOMPLETE: no cell finished yet" until the first cell
        if s.compare is not None:
            required = s.compare_fail is not None and not s.allow_missing_baseline
            try:
                self.baseline = load_baseline(s.baseline_dir, s.compare, model=s.model,
                                              dataset=dataset_name(default_data(s)), required=required)
            except HacError as exc:
                self.fail(f"usage error: {exc}")
                raise
            if self.baseline is None:
                self.notes.append(f"no baseline {s.compare!r} in {s.baseline_dir}: nothing compared "
                                  f"(save one with --hac-save-baseline)")
            else:
                drift = version_drift(self.baseline.meta.get("versions", {}), versions())
                if drift:
                    self.notes.append("baseline recorded with other versions: " + ", ".join(drift))

    # --- model, data, engine ------------------------------------------------------------------------

    def load(self) -> tuple[Classifier, Dataset]:
        """The model and the data, loaded once; a failure is one :class:`HacError`, said once."""
        if self._loaded is not None:
            return self._loaded
        if self._load_error is not None:
            raise HacError(f"not evaluated: loading the model or data failed ({self._load_error.splitlines()[0]})")
        s = self.settings
        try:
            model = get_model(s.model, device=s.device, trust_files=s.trust_model_file, offline=s.offline,
                              input_size=s.input_size, resize_size=s.resize_size)
            data = load_dataset(default_data(s), resize=model.resize_size, crop=model.input_size, samples=s.samples,
                                seed=s.seed, strict=s.strict, workers=s.workers, labels=s.labels)
        except HacError as exc:
            self._load_error = str(exc)
            raise
        if s.restrict_classes:
            classes = list(data.class_labels)  # every class of the data set, not only the subset's
            model = restrict(model, classes).to(s.device)
            remap = {c: i for i, c in enumerate(classes)}
            data = replace(data, labels=torch.tensor([remap[int(y)] for y in data.labels]), label_space="index")
        self._loaded = (model, data)
        return self._loaded

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @property
    def model(self) -> Classifier:
        return self.load()[0]

    @property
    def dataset(self) -> Dataset:
        return self.load()[1]

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            s = self.settings
            disk = None if s.cache_dir is None else DiskCache(s.cache_dir)
            self._engine = Engine(self.model, self.dataset, device=s.device, batch_size=s.batch_size, seed=s.seed,
                                  amp=s.amp, weights_dir=s.weights_dir, store=Store((s.cache_mb << 20) // 2, disk=disk),
                                  soundness=s.soundness, offline=s.offline, memory_mb=s.cache_mb, gallery=s.gallery)
            if self._plan is not None:
                self._engine.plan(self._plan)
        return self._engine

    def prepare(self) -> None:
        """Load the model and the data, check they fit, and build the planned cells' codecs (their weights):
        what would stop every cell is found once, before the first one runs."""
        engine = self.engine
        for case in self._plan or []:
            if case.codec != "identity":
                engine.codec(case.codec, case.quality)

    def plan(self, cases: list[Case], universe: list[Case] | None = None) -> None:
        """The cases this run will evaluate (and ``universe``, every case collected), so the engine keeps
        what they and the cells their verdicts depend on share, and drops the rest."""
        if universe is not None:
            self.universe = list(universe)
        needed = list(cases)
        for case in cases:
            needed += dependencies(case, self.universe)
        self._plan = list(dict.fromkeys(needed))
        if self._engine is not None:
            self._engine.plan(self._plan)

    # --- measuring and deciding ---------------------------------------------------------------------

    def evaluate(self, case: Case) -> Result:
        """The cell's result, evaluated once per session whoever asks (its test, or a cell that depends on it)."""
        result = self._results.get(case.identity)
        if result is None:
            result = replace(self.engine.evaluate(case), rule=self.settings.gate)
            self._results[case.identity] = result
        return replace(result, threshold=case.threshold)

    def compare(self, result: Result, parts: list[Result] | None = None) -> Comparison | None:
        """The cell against the baseline (None without a baseline or without the cell in it)."""
        if self.baseline is None:
            return None
        return compare(result, self.baseline.results, self.settings.compare_fail, parts=parts,
                       hashes=(self.baseline.meta.get("image_hashes"), self.image_hashes()))

    def attack_work(self) -> int:
        """Images attacked so far by this process's cells (soundness probes apart)."""
        return 0 if self._engine is None else self._engine.counters["attack_images"]

    def decide(self, test: str, case: Case, result: Result,
               test_failure: Reason | None = None) -> tuple[Cell, list[Result]]:
        """The cell's verdict, final, and the results of the cells it depends on: every one is evaluated
        now (memoized), so the same verdict comes out whatever ran before, in which order, in which shard
        or selection."""
        s = self.settings
        deps = [self.evaluate(d) for d in dependencies(case, self.universe)]
        for dep in deps:
            self.references.setdefault(dep.case_id, dep)
        comparison = self.compare(result, deps if case.parts else None)
        verdict = decide(result, threshold=case.threshold, rule=s.gate, test_failure=test_failure,
                         comparison=comparison, compare_fail=s.compare_fail, baseline=s.compare,
                         findings=soundness_check([result] + deps), soundness=s.soundness)
        return Cell(test=test, result=result, verdict=verdict, comparison=comparison, threshold=case.threshold), deps

    def record(self, cell: Cell, references: list[Result] = ()) -> None:
        """Keep ``cell`` (decided already) and rewrite the report at once, so an interruption loses nothing."""
        self.cells[cell.test] = cell
        for ref in references:
            self.references.setdefault(ref.case_id, ref)
        self.flush(complete=False)

    # --- thresholds files ---------------------------------------------------------------------------

    def apply_thresholds(self, cases: list[Case], directory: Path) -> list[Case]:
        """``cases`` with the thresholds file's values (the file wins over the marker)."""
        if self.settings.update_thresholds:  # recording thresholds: measured, not gated (plugin/update.py writes)
            return [replace(c, threshold=None) for c in cases]
        return self.thresholds.apply(cases, directory)

    def check_thresholds(self) -> None:
        """After collection: sets :attr:`threshold_lines` and :attr:`threshold_warnings` (see
        :meth:`ThresholdFiles.check <pytest_hac.core.threshold_files.ThresholdFiles.check>`, which may raise)."""
        self.threshold_lines, self.threshold_warnings = self.thresholds.check()

    # --- the report -----------------------------------------------------------------------------------

    def image_hashes(self) -> list[str] | None:
        if self.loaded:
            return list(self.dataset.content_hashes)
        return self.worker_data_info.get("image_hashes")

    def data_info(self) -> dict:
        """What the report says about the images and how the model sees them (xdist workers send it along)."""
        model, data = self.model, self.dataset
        labels = {"rule": data.labels_rule}
        if data.label_map and len(data.label_map) <= MAPPING_SHOWN:
            labels["map"] = data.label_map
        return {"image_size": list(data.images.shape[-2:]), "skipped": list(data.skipped),
                "preprocessing": {"resize": model.resize_size, "crop": model.input_size,
                                  "normalization": describe_normalization(model)},
                "labels": labels, "upscaled": data.upscaled, "source_size": data.source_size,
                "image_hashes": list(data.content_hashes)}

    def report(self, complete: bool = False, error: str | None = None) -> Report:
        s = self.settings
        if self.loaded:
            name, n, ids, info = self.dataset.name, len(self.dataset), list(self.dataset.ids), self.data_info()
        else:  # results merged from xdist workers: the controller never loaded the data
            first = next(iter(self.cells.values()), None)
            name, n, ids = (dataset_name(default_data(s)), first.result.n if first else 0,
                            list(first.result.ids) if first else [])
            info = self.worker_data_info
        results = list({c.case_id: c.result for c in self.cells.values()}.values())
        refs = [r for i, r in sorted(self.references.items()) if i not in {c.case_id for c in self.cells.values()}]
        checked = results + refs
        seconds = self._engine.seconds.get("probe", 0.0) if self._engine is not None else 0.0
        meta = {"versions": versions(), "machine": platform.platform(), "python": sys.version.split()[0],
                "torch_threads": self.torch_threads or torch.get_num_threads(), "soundness_mode": s.soundness,
                "soundness": {"status": soundness_status(checked),
                              "findings": [f.__dict__ for f in soundness_check(checked)]},
                "thresholds": self.threshold_lines + self.threshold_warnings,
                "attack_images": self.attack_images, "probe_seconds": round(seconds, 3),
                **{k: info.get(k) for k in ("image_size", "preprocessing", "labels", "image_hashes")}}
        notes = list(self.notes) + self.weakened_attacks() + upscaling_note(info, n) + self.baseline_gaps()
        return Report(model=s.model, dataset=name, n=n, device=s.device, seed=s.seed, gate_rule=s.gate, ids=ids,
                      cells=list(self.cells.values()), complete=complete, scope=self.scope,
                      skipped_images=list(info.get("skipped", [])), meta=meta, notes=notes, references=refs,
                      error=error)

    def baseline_gaps(self) -> list[str]:
        """Baseline cells this run did not evaluate: a gate that silently lost cells must say so."""
        if self.baseline is None or not self.cells:
            return []
        ran = {c.case_id for c in self.cells.values()}
        missing = sorted({r.case_id for r in self.baseline.results} - ran)
        if not missing:
            return []
        shown = ", ".join(f"`{m}`" for m in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10
                                                               else "")
        return [f"{len(missing)} baseline cell{'s' if len(missing) != 1 else ''} not in this run: {shown}"]

    def weakened_attacks(self) -> list[str]:
        """Cells whose attack runs fewer steps than the attack's default: visible, never hidden."""
        from .registry import ATTACKS

        weak: dict[str, list[str]] = {}
        for cell in self.cells.values():
            params = cell.result.attack_params
            name = params.get("name")
            if not name or name not in ATTACKS:
                continue
            default = ATTACKS.info(name).steps
            if params.get("steps") is not None and params["steps"] < default:
                weak.setdefault(describe_attack(params) + f" (default steps {default})", []).append(cell.case_id)
        return [f"attack weaker than its defaults: {attack} in {len(cells)} cell{'s' if len(cells) != 1 else ''}"
                for attack, cells in weak.items()]

    def _write(self, rep: Report, *, plot: bool, trend: Trend | None = None, gallery: dict | None = None) -> None:
        try:
            self.report_paths = write_report(rep, self.settings.report_dir, plot=plot, trend=trend, gallery=gallery)
            self.write_error = None
        except OSError as exc:  # disk full, read-only folder: keep going, say so at the end
            self.write_error = f"could not write reports to {self.settings.report_dir}: {exc}"
            warnings.warn(f"pytest-hac: {self.write_error}", stacklevel=3)

    def flush(self, *, complete: bool, plot: bool = False) -> Report:
        rep = self.report(complete)
        if self.write_files:
            self._write(rep, plot=plot)
        return rep

    def close(self) -> None:
        """Free what the run holds on disk (the engine's scratch folder)."""
        if self._engine is not None:
            self._engine.close()

    def fail(self, error: str) -> Report:
        """The run ended without a verdict (usage, collection or internal error): a report that says so,
        with the error in one line, and the same in GitHub's step summary."""
        rep = self.report(complete=False, error=" ".join(error.split())[:500])
        if self.write_files:
            self._write(rep, plot=False)
            self._put_back(rep)
            append_step_summary(step_summary(rep, self.settings.summary))
        return rep

    def _put_back(self, rep: Report) -> None:
        """A selection's report has its own name: the full report set aside at the start comes back."""
        selection = rep.stem != self._marker
        if selection and self._marker is not None:
            discard(self.settings.report_dir, self._marker)
        restore_aside(self._set_aside, keep=selection)
        self._set_aside = []

    def trend(self, rep: Report) -> Trend | None:
        """With ``--hac-history``: the trend over the history and this run (the Markdown's and the page's
        section, and ``--hac-trend-fail``'s drifts), read once per report."""
        if self.settings.history is None or not rep.complete or rep.scope.partial:
            return None
        if self._trend is None or self._trend[0] is not rep:
            self._trend = (rep, trend_of(self.settings.history, rep))
        return self._trend[1]

    def trend_failures(self, rep: Report) -> list[str]:
        """``--hac-trend-fail``: the significant drifts larger than its margin (none: the run passes)."""
        trend = None if self.settings.trend_fail is None else self.trend(rep)
        return [] if trend is None else [f.message(trend.labels) for f in trend.drifts(self.settings.trend_fail)]

    def finish(self, rep: Report) -> Report:
        """Write the final report (with the plot), the baseline if asked, and GitHub's step summary.

        A selection (``-k``, node ids) writes ``<model>.selection.*`` and puts the full report it set
        aside at the start back in place; any other run replaces it.
        """
        if self.write_files:
            self._write(rep, plot=True, trend=self.trend(rep), gallery=self.gallery)
            self._put_back(rep)
            if rep.cells and self.settings.save_baseline is not None:
                try:
                    self.report_paths["baseline"] = save_baseline(rep, self.settings.baseline_dir,
                                                                  self.settings.save_baseline)
                except OSError as exc:
                    self.write_error = f"could not save baseline in {self.settings.baseline_dir}: {exc}"
            if self.settings.history is not None:
                try:
                    if (entry := record_history(rep, self.settings.history)) is not None:
                        self.report_paths["history"] = entry
                except OSError as exc:
                    self.write_error = f"could not add the run to the history in {self.settings.history}: {exc}"
            if rep.cells:
                append_step_summary(step_summary(rep, self.settings.summary))
        return rep


__all__ = ["GATE_RULES", "HacRun", "default_data", "versions"]
