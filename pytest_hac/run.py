"""State across a run, without pytest: model, data and engine (loaded lazily), verdicts, the report.

:class:`HacRun` is what the pytest plugin drives and what a notebook can use directly:
``run.engine.evaluate(case)`` measures, ``run.verdict(...)`` decides (threshold, baseline,
soundness) and ``run.record(cell)`` keeps the cell and rewrites the report at once.
"""
from __future__ import annotations

import platform
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .core.cases import Case
from .core.engine import Engine
from .core.gates import Comparison, Thresholds, compare, describe_attack, version_drift
from .core.result import GATE_RULES, Result, format_threshold
from .core.soundness import Finding
from .core.soundness import check as soundness_check
from .core.soundness import status as soundness_status
from .data import Dataset, load_dataset
from .errors import HacError
from .io.cache import DiskCache, Store, package_versions
from .models import Classifier, describe_normalization, get_model, model_info, restrict
from .report.baselines import load_baseline, save_baseline
from .report.markdown import markdown
from .report.output import write_report
from .report.schema import Cell, Reason, Report, Scope
from .report.summary import append_step_summary
from .settings import Settings

#: Label mappings up to this many classes are written into the report in full.
MAPPING_SHOWN = 50
#: Packages whose versions a report records: those that can change its numbers.
REPORTED_PACKAGES = ("pytest-hac", "torch", "torchvision", "torchattacks", "compressai", "kornia", "pillow", "numpy")


def versions() -> dict[str, str]:
    """Versions that change numbers; recorded in every report (and checked against baselines)."""
    return {"python": platform.python_version(), **package_versions(REPORTED_PACKAGES)}


def default_data(settings: Settings) -> str:
    """The data a model is evaluated on when ``--hac-data`` is not given."""
    if settings.data:
        return settings.data
    info = model_info(settings.model)
    return "digits" if info is not None and info.label_space == "digits" else "embedded"


def _upscaling(info: dict, n: int) -> list[str]:
    """A note when photos were enlarged more than 2x to reach the model's input: probably the wrong preprocessing."""
    if not info.get("upscaled"):
        return []
    pre = info.get("preprocessing", {})
    return [f"{info['upscaled']} of {n} images were enlarged more than 2x to reach the model's preprocessing (shorter "
            f"side {info.get('source_size')} px resized to {pre.get('resize')}, cropped to {pre.get('crop')}): a model "
            f"trained on images this small should say its size; set --hac-input-size and --hac-resize-size (or "
            f"input_size/resize_size attributes on the module)"]


def dataset_name(spec: str) -> str:
    return spec if spec in ("embedded", "digits") else Path(spec).expanduser().name


@dataclass(frozen=True)
class Outcome:
    """What the test itself did with its result: passed, failed its gate (with the threshold and rule
    it used) or failed otherwise (``error``)."""

    passed: bool
    gate_threshold: float | None = None
    gate_rule: str | None = None
    error: str | None = None


class HacRun:
    """One run's evaluation state. Loads nothing until asked; writes reports only with ``write_files``."""

    def __init__(self, settings: Settings, *, write_files: bool = True) -> None:
        self.settings = settings
        self.write_files = write_files
        self.cells: dict[str, Cell] = {}
        self.scope = Scope()
        self.report_paths: dict[str, Path] = {}
        self.write_error: str | None = None
        self.notes: list[str] = []
        #: Cells that passed and were implicated later by a soundness finding: the run fails.
        self.late_failures: list[str] = []
        #: Images attacked by the cells' attacks (soundness probes apart), summed over xdist workers.
        self.attack_images = 0
        #: Under xdist the controller never loads the data: workers send what the report says of it.
        self.worker_data_info: dict = {}
        self.crashed: list[str] = []
        #: The HTML page's gallery (core.gallery's JSON), gathered from the cells (xdist workers' too).
        self.gallery: dict = {}
        #: torch threads of the process that evaluated (an xdist worker's, not the controller's).
        self.torch_threads: int | None = None
        self._thresholds: dict[Path, Thresholds | None] = {}
        self.threshold_use: dict[Path, list[str]] = {}
        #: Thresholds files without a table for the model (set at collection; shown in terminal and report).
        self.threshold_warnings: list[str] = []
        self._loaded: tuple[Classifier, Dataset] | None = None
        self._load_error: str | None = None
        self._engine: Engine | None = None
        self._plan: list[Case] | None = None
        self.baseline: Report | None = None
        if settings.compare is not None:
            required = settings.compare_fail is not None and not settings.allow_missing_baseline
            self.baseline = load_baseline(settings.baseline_dir, settings.compare, model=settings.model,
                                          dataset=dataset_name(default_data(settings)), required=required)
            if self.baseline is None:
                self.notes.append(f"no baseline {settings.compare!r} in {settings.baseline_dir}: nothing compared "
                                  f"(save one with --hac-save-baseline)")
            else:
                drift = version_drift(self.baseline.meta.get("versions", {}), versions())
                if drift:
                    self.notes.append("baseline recorded with other versions: " + ", ".join(drift))

    # --- model, data, engine ------------------------------------------------------------------------

    def _load(self) -> tuple[Classifier, Dataset]:
        if self._loaded is not None:
            return self._loaded
        if self._load_error is not None:  # said once in full; every later cell points back to it
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
        return self._load()[0]

    @property
    def dataset(self) -> Dataset:
        return self._load()[1]

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

    def plan(self, cases: list[Case]) -> None:
        """The cases this run will evaluate, so the engine keeps what they share and drops the rest."""
        self._plan = list(cases)
        if self._engine is not None:
            self._engine.plan(self._plan)

    # --- thresholds files ---------------------------------------------------------------------------

    def thresholds_for(self, directory: Path) -> Thresholds | None:
        """The thresholds file in force for tests in ``directory`` (--hac-thresholds wins)."""
        path = self.settings.thresholds or directory / "hac_thresholds.toml"
        if path not in self._thresholds:
            self._thresholds[path] = Thresholds.load(path) if path.is_file() else None
        return self._thresholds[path]

    def apply_thresholds(self, cases: list[Case], directory: Path) -> list[Case]:
        """``cases`` with the thresholds file's values (the file wins over the marker); remembers the use."""
        if self.settings.update_thresholds:  # recording thresholds: measured, not gated (plugin/update.py writes)
            return [replace(c, threshold=None) for c in cases]
        thresholds = self.thresholds_for(directory)
        if thresholds is None:
            return cases
        model = self.settings.model
        out = [replace(c, threshold=t) if (t := thresholds.lookup(model, c.id)) is not None else c for c in cases]
        self.threshold_use.setdefault(thresholds.path, []).extend(c.id for c in cases)
        return out

    def check_thresholds(self) -> list[str]:
        """Problems with the thresholds files in use: raises for patterns that match no cell (and, with
        ``--hac-strict``, for a file without a table for the model); returns the warnings."""
        model, found = self.settings.model, []
        for path, case_ids in self.threshold_use.items():
            thresholds = self._thresholds[path]
            unused = thresholds.unused(model, case_ids)
            if unused:
                raise HacError(f"{path}: [{model}] patterns {unused} match no cell; fix or remove them")
            missing = thresholds.missing_table(model)
            if missing and self.settings.strict:
                raise HacError(missing + " (an error under --hac-strict)")
            if missing:
                found.append(missing)
        return found

    def thresholds_lines(self) -> list[str]:
        """For the report: which tables of which file applied to this run."""
        lines = []
        for path, case_ids in self.threshold_use.items():
            thresholds = self._thresholds[path]
            tables = thresholds.tables_for(self.settings.model)
            shown = ", ".join(f"[{t}]" for t in tables) or "none"
            lines.append(f"`{path}`: tables {shown} applied to {len(set(case_ids))} cells")
        return lines

    # --- verdicts -----------------------------------------------------------------------------------

    def compare(self, result: Result) -> Comparison | None:
        """The cell against the baseline (None without a baseline or without the cell in it)."""
        if self.baseline is None:
            return None
        return compare(result, self.baseline.results, self.settings.compare_fail)

    def findings(self, extra: Result | None = None) -> list[Finding]:
        results = {c.case_id: c.result for c in self.cells.values()}
        if extra is not None:
            results[extra.case_id] = extra
        return soundness_check(list(results.values()))

    def verdict(self, test: str, result: Result, outcome: Outcome) -> Cell:
        """Decide a cell: its own test's outcome, then the baseline and the soundness findings.

        Every reason is kept (a cell can fail its threshold and regress); only the
        reasons beyond the test's own failure are new to pytest (see :meth:`extra_reasons`).
        """
        s = self.settings
        reasons: list[Reason] = []
        threshold = result.threshold
        if outcome.gate_threshold is not None:
            threshold = outcome.gate_threshold
            reasons.append(Reason("threshold", f"{result.accuracy:.3f} < {format_threshold(threshold)} "
                                               f"({outcome.gate_rule} rule)"))
        elif not outcome.passed:
            reasons.append(Reason("error", outcome.error or "the test failed"))
        comp = self.compare(result)
        if comp is not None and comp.regression:
            reasons.append(Reason("regression", f"dropped {-comp.delta_points:.1f} points against baseline "
                                                f"{s.compare!r} ({comp.baseline:.3f} -> {comp.current:.3f} on "
                                                f"{comp.compared} shared images, one-sided paired p={comp.p_drop:.3g})"
                                                f", more than the allowed {s.compare_fail:g} points"))
        if comp is not None and not comp.comparable and s.compare_fail is not None:
            reasons.append(Reason("baseline", f"not comparable with baseline {s.compare!r}: {comp.why}"))
        if s.soundness != "warn":
            reasons += [Reason("soundness", f"{f.check}: {f.message}") for f in self.findings(result)
                        if f.implicates(result.case_id)]
        passed = outcome.passed and not any(r.kind in ("regression", "baseline", "soundness") for r in reasons)
        return Cell(test=test, result=result, passed=passed, reasons=tuple(reasons), comparison=comp,
                    threshold=threshold)

    @staticmethod
    def extra_reasons(cell: Cell) -> list[str]:
        """The reasons pytest has not shown yet: all but the test's own failure."""
        return [f"{cell.case_id}: {r.kind}: {r.message}" for r in cell.reasons if r.kind not in ("threshold", "error")]

    def record(self, cell: Cell) -> None:
        """Keep ``cell`` and rewrite the report at once, so an interruption loses nothing finished.

        A soundness finding that implicates a cell recorded earlier fails that cell now
        (it is marked in the report and the run's exit status turns to failed).
        """
        self.cells[cell.test] = cell
        if self.settings.soundness != "warn":
            findings = self.findings()
            for test, old in list(self.cells.items()):
                if test == cell.test or old.passed is not True:
                    continue
                late = [Reason("soundness", f"{f.check} (found after the cell ran): {f.message}") for f in findings
                        if f.implicates(old.case_id)]
                if late:
                    self.cells[test] = replace(old, passed=False, reasons=old.reasons + tuple(late))
                    self.late_failures.append(f"{test}: " + "; ".join(r.message for r in late))
        self.flush(complete=False)

    # --- the report -----------------------------------------------------------------------------------

    def data_info(self) -> dict:
        """What the report says about the images and how the model sees them (xdist workers send it along)."""
        model, data = self.model, self.dataset
        labels = {"rule": data.labels_rule}
        if data.label_map and len(data.label_map) <= MAPPING_SHOWN:
            labels["map"] = data.label_map
        return {"image_size": list(data.images.shape[-2:]), "skipped": list(data.skipped),
                "preprocessing": {"resize": model.resize_size, "crop": model.input_size,
                                  "normalization": describe_normalization(model)},
                "labels": labels, "upscaled": data.upscaled, "source_size": data.source_size}

    def report(self, complete: bool = False) -> Report:
        s = self.settings
        if self.loaded:
            name, n, ids, info = self.dataset.name, len(self.dataset), list(self.dataset.ids), self.data_info()
        else:  # results merged from xdist workers: the controller never loaded the data
            first = next(iter(self.cells.values()), None)
            name, n, ids = (dataset_name(default_data(s)), first.result.n if first else 0,
                            list(first.result.ids) if first else [])
            info = self.worker_data_info
        results = list({c.case_id: c.result for c in self.cells.values()}.values())
        meta = {"versions": versions(), "machine": platform.platform(), "python": sys.version.split()[0],
                "torch_threads": self.torch_threads or torch.get_num_threads(), "soundness_mode": s.soundness,
                "soundness": {"status": soundness_status(results),
                              "findings": [f.__dict__ for f in soundness_check(results)]},
                "thresholds": self.thresholds_lines() + self.threshold_warnings,
                "attack_images": self.attack_images,
                **{k: info.get(k) for k in ("image_size", "preprocessing", "labels")}}
        notes = list(self.notes) + self.weakened_attacks() + _upscaling(info, n)
        return Report(model=s.model, dataset=name, n=n, device=s.device, seed=s.seed, gate_rule=s.gate, ids=ids,
                      cells=list(self.cells.values()), complete=complete, scope=self.scope,
                      skipped_images=list(info.get("skipped", [])), meta=meta, notes=notes)

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
        return [f"attack weaker than its defaults: {attack} in {len(cells)} cell(s)" for attack, cells in weak.items()]

    def flush(self, *, complete: bool, plot: bool = False) -> Report:
        rep = self.report(complete)
        if self.write_files:
            try:
                self.report_paths = write_report(rep, self.settings.report_dir, plot=plot)
                self.write_error = None
            except OSError as exc:  # disk full, read-only folder: keep going, say so at the end
                self.write_error = f"could not write reports to {self.settings.report_dir}: {exc}"
                warnings.warn(f"pytest-hac: {self.write_error}", stacklevel=2)
        return rep

    def close(self) -> None:
        """Free what the run holds on disk (the engine's scratch folder)."""
        if self._engine is not None:
            self._engine.close()

    def finish(self, rep: Report) -> Report:
        """Write the final report (with the plot), the baseline if asked, and GitHub's step summary."""
        if self.write_files:
            try:
                self.report_paths = write_report(rep, self.settings.report_dir, plot=True, gallery=self.gallery)
                self.write_error = None
            except OSError as exc:
                self.write_error = f"could not write reports to {self.settings.report_dir}: {exc}"
            if rep.cells and self.settings.save_baseline is not None:
                try:
                    self.report_paths["baseline"] = save_baseline(rep, self.settings.baseline_dir,
                                                                  self.settings.save_baseline)
                except OSError as exc:
                    self.write_error = f"could not save baseline in {self.settings.baseline_dir}: {exc}"
            if rep.cells:
                append_step_summary(markdown(rep, plot_name=None))
        return rep


__all__ = ["GATE_RULES", "HacRun", "Outcome", "default_data", "versions"]
