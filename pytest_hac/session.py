"""State across a run: lazily loaded model, data and engine; the results recorded so far."""
from __future__ import annotations

import platform
import sys
import warnings
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import torch

from .config import Settings
from .data import Dataset, load_dataset
from .cache import DiskCache, Store, package_versions
from .engine import Engine
from .models import Classifier, get_model, model_info, restrict
from .gates import Comparison, Thresholds, compare, load_baseline, save_baseline, version_drift
from .report import Report, append_step_summary, markdown, write_report
from .result import Result
from .soundness import check as soundness_check
from .soundness import markdown_section as soundness_section

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


class HacSession:
    """One pytest session's (or notebook's) evaluation state. Loads nothing until asked."""

    def __init__(self, settings: Settings, *, write_files: bool = True) -> None:
        self.settings = settings
        self.write_files = write_files
        self.results: dict[str, Result] = {}
        self.expected_cells = 0
        self.finished_cells: set[str] = set()
        self.report_paths: dict[str, Path] = {}
        self.write_error: str | None = None
        self.notes: list[str] = []
        #: Under xdist the controller never loads the data: workers send their skipped images and it
        #: learns of crashed workers (either makes the report say so).
        self.merged_skipped: list[str] = []
        self.crashed: list[str] = []
        self._thresholds: dict[Path, Thresholds | None] = {}
        self.threshold_files: dict[Path, tuple[Thresholds, list[str]]] = {}
        self.baseline: Report | None = None
        if settings.compare is not None:
            self.baseline = load_baseline(settings.baseline_dir, settings.compare, model=settings.model,
                                          dataset=_dataset_name(default_data(settings)))
            if self.baseline is None:
                self.notes.append(f"no baseline {settings.compare!r} in {settings.baseline_dir}: nothing compared "
                                  f"(save one with --hac-save-baseline)")
            else:
                drift = version_drift(self.baseline, versions())
                if drift:
                    self.notes.append("baseline recorded with other versions: " + ", ".join(drift))

    def thresholds_for(self, directory: Path) -> Thresholds | None:
        """The thresholds file in force for tests in ``directory`` (--hac-thresholds wins)."""
        path = self.settings.thresholds or directory / "hac_thresholds.toml"
        if path not in self._thresholds:
            self._thresholds[path] = Thresholds.load(path) if path.is_file() else None
        return self._thresholds[path]

    def compare(self, result: Result) -> Comparison | None:
        """Compare with the baseline (if any) and mark a significant drop beyond --hac-compare-fail."""
        if self.baseline is None:
            return None
        comp = compare(result, self.baseline)
        if comp is not None:
            result.baseline_accuracy, result.p_drop = comp.baseline, comp.p_drop
            margin = self.settings.compare_fail
            result.regression = margin is not None and comp.regression(margin)
        return comp

    @cached_property
    def _loaded(self) -> tuple[Classifier, Dataset]:
        s = self.settings
        model = get_model(s.model, device=s.device, trust_files=s.trust_model_file)
        data = load_dataset(default_data(s), resize=model.resize_size, crop=model.input_size, strict=s.strict)
        classes = sorted(set(data.labels.tolist()))  # before subsetting: every class folder counts
        data = data.subset(s.samples, s.seed)
        if s.restrict_classes:
            model = restrict(model, classes).to(s.device)
            remap = {c: i for i, c in enumerate(classes)}
            data = replace(data, labels=torch.tensor([remap[int(y)] for y in data.labels]), label_space="index")
        return model, data

    @property
    def model(self) -> Classifier:
        return self._loaded[0]

    @property
    def dataset(self) -> Dataset:
        return self._loaded[1]

    @cached_property
    def engine(self) -> Engine:
        s = self.settings
        disk = None if s.cache_dir is None else DiskCache(s.cache_dir)
        return Engine(self.model, self.dataset, device=s.device, batch_size=s.batch_size, seed=s.seed, amp=s.amp,
                      weights_dir=s.weights_dir, store=Store(s.cache_mb << 20, disk=disk))

    # --- recording --------------------------------------------------------------------------------

    def report(self, complete: bool = False) -> Report:
        s = self.settings
        if "_loaded" in self.__dict__:
            name, n, ids, skipped = self.dataset.name, len(self.dataset), list(self.dataset.ids), list(
                self.dataset.skipped)
        else:  # results merged from xdist workers: the controller never loaded the data
            first = next(iter(self.results.values()), None)
            name, n, ids, skipped = (_dataset_name(default_data(s)), first.n if first else 0,
                                     first.ids if first else [], list(self.merged_skipped))
        rep = Report(model=s.model, dataset=name, n=n, device=s.device, seed=s.seed, gate_rule=s.gate, ids=ids,
                     results=list(self.results.values()), complete=complete, skipped_images=skipped,
                     meta={"versions": versions(), "machine": platform.platform(), "python": sys.version.split()[0],
                           "torch_threads": torch.get_num_threads(),
                           "soundness": [f.__dict__ for f in soundness_check(list(self.results.values()))]},
                     notes=list(self.notes))
        return rep

    def record(self, result: Result) -> None:
        """Keep ``result`` and rewrite the report at once, so an interruption loses nothing finished."""
        self.results[result.case_id] = result
        self.flush(complete=False)

    def flush(self, *, complete: bool, plot: bool = False) -> Report:
        rep = self.report(complete)
        if self.write_files:
            try:
                self.report_paths = write_report(rep, self.settings.report_dir, plot=plot,
                                                 extra_sections=[soundness_section(rep.results)])
                self.write_error = None
            except OSError as exc:  # disk full, read-only folder: keep going, say so at the end
                self.write_error = f"could not write reports to {self.settings.report_dir}: {exc}"
                warnings.warn(f"pytest-hac: {self.write_error}", stacklevel=2)
        return rep

    def finish(self, *, complete: bool) -> Report:
        rep = self.flush(complete=complete, plot=True)
        if self.write_files and rep.results:
            if self.settings.save_baseline is not None:
                try:
                    path = save_baseline(rep, self.settings.baseline_dir, self.settings.save_baseline)
                    self.report_paths["baseline"] = path
                except OSError as exc:
                    self.write_error = f"could not save baseline in {self.settings.baseline_dir}: {exc}"
            append_step_summary(markdown(rep, plot_name=None, extra_sections=[soundness_section(rep.results)]))
        return rep


def _dataset_name(spec: str) -> str:
    return spec if spec in ("embedded", "digits") else Path(spec).expanduser().name

