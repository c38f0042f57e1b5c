"""The thresholds files a session uses: found beside each test module (or ``--hac-thresholds``), loaded once,
applied to the cells collected there, and checked once collection is over."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ...errors import HacError
from ...formats import THRESHOLDS_FILE
from ..cells.cases import Case
from .gates import Thresholds


class ThresholdFiles:
    """Thresholds files in force for one model; the file wins over the marker.

    Args:
        model: the run's model (the table it reads).
        override: ``--hac-thresholds`` (else ``hac_thresholds.toml`` beside each test module).
        strict: a file without a table for the model is an error, not a warning.
        allow_unused: patterns that match no cell of this run are a warning, not an error.
    """

    def __init__(self, model: str, override: Path | None, *, strict: bool = False,
                 allow_unused: bool = False) -> None:
        self.model = model
        self.override = override
        self.strict = strict
        self.allow_unused = allow_unused
        self._files: dict[Path, Thresholds | None] = {}
        #: File -> the ids of the cells it was applied to.
        self.use: dict[Path, list[str]] = {}

    def for_directory(self, directory: Path) -> Thresholds | None:
        """The thresholds file in force for tests in ``directory``."""
        path = self.override or directory / THRESHOLDS_FILE
        if path not in self._files:
            self._files[path] = Thresholds.load(path) if path.is_file() else None
        return self._files[path]

    def apply(self, cases: list[Case], directory: Path) -> list[Case]:
        """``cases`` with the file's values; remembers the use for :meth:`check`."""
        thresholds = self.for_directory(directory)
        if thresholds is None:
            return cases
        out = [replace(c, threshold=t) if (t := thresholds.lookup(self.model, c.id)) is not None else c
               for c in cases]
        self.use.setdefault(thresholds.path, []).extend(c.id for c in cases)
        return out

    def check(self) -> tuple[list[str], list[str]]:
        """The report's lines on which tables applied, and the warnings. Raises :class:`HacError` for patterns
        that match no cell (unless ``allow_unused``) and, with ``strict``, for a file without the model's table."""
        found = []
        for path, case_ids in self.use.items():
            thresholds = self._files[path]
            unused = thresholds.unused(self.model, case_ids)
            if unused and not self.allow_unused:
                raise HacError(f"{path}: [{self.model}] patterns {unused} match no cell; fix or remove them (or "
                               f"pass --hac-strictness=lenient for a reduced matrix)")
            if unused:
                found.append(f"{path}: patterns {unused} match no cell of this run")
            missing = thresholds.missing_table(self.model)
            if missing and self.strict:
                raise HacError(missing + " (an error under --hac-strictness=strict)")
            if missing:
                found.append(missing)
        return self.lines(), found

    def lines(self, selected: set[str] | None = None) -> list[str]:
        """Which tables of which file applied, to how many cells: of ``selected`` (the ids of the cells this run
        runs, after ``-k``, ``--lf`` or a shard), else of every cell collected."""
        lines = []
        for path, case_ids in self.use.items():
            tables = ", ".join(f"[{t}]" for t in self._files[path].tables_for(self.model)) or "none"
            collected = set(case_ids)
            count = len(collected if selected is None else collected & selected)
            of = "" if selected is None or count == len(collected) else f" (of {len(collected)} collected)"
            lines.append(f"`{path}`: tables {tables} applied to {count} cell{'s' if count != 1 else ''}{of}")
        return lines
