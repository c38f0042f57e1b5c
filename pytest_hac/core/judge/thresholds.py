"""Thresholds files: the model's thresholds a session applies (``[model] "cell pattern" = minimum``, most specific
pattern first), the files a session reads, and ``--hac-update-thresholds`` editing a file as text.

The thresholds files a session uses: found beside each test module (or ``--hac-thresholds``), loaded once,
applied to the cells collected there, and checked once collection is over.

``--hac-update-thresholds``: a thresholds file written from a measured run ("record now, gate from now on").

Each cell's threshold is its measured accuracy minus a margin, rounded down to two decimals. The rule
follows what is random between the recording run and the runs it gates: on the same images with the same
seeds nothing is (a CPU rerun is bit-identical; a GPU's non-deterministic kernels may flip an image or
two), so the margin is a small slack for the device, not a confidence interval: a rerun passes and a
regression of a few points fails. Another sample of images varies by its interval: that is the gate
rule's business (``--hac-gate=lenient``), not the threshold's. A cell measured at (about) 0 gets no
threshold: 0 gates nothing and would turn "measured" into "passed". The file is
edited as text, not rewritten: other models' tables, the ``["*"]`` table, comments and hand-written
patterns stay as they are; a cell's exact entry in the model's table gets its new value (its comment
kept), a new one is added at the end of the table, after the patterns, so it wins over them
(:meth:`Thresholds.lookup` takes the last match). The result is read back with ``tomllib``
and must hold every value written.
"""
from __future__ import annotations

import fnmatch
import math
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from ...errors import HacError
from ...formats import THRESHOLDS_FILE, toml_key
from ...io.files import atomic_write
from ..cells.cases import Case, parse_fraction


@dataclass(frozen=True)
class Thresholds:
    """``[model]`` tables of ``"cell-pattern" = min_accuracy`` (``["*"]`` applies to every model)."""

    path: Path
    table: dict[str, dict[str, float]]

    @classmethod
    def load(cls, path: Path) -> "Thresholds":
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HacError(f"thresholds file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise HacError(f"thresholds file {path} is not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise HacError(f"thresholds file {path} is not UTF-8 text ({exc}); save it as UTF-8 TOML") from None
        except OSError as exc:
            raise HacError(f"cannot read thresholds file {path}: {exc}") from None
        table: dict[str, dict[str, float]] = {}
        for model, cells in data.items():
            if not isinstance(cells, dict):
                raise HacError(f"{path}: {model!r} = {cells!r} is outside a table: put \"cell-pattern\" = accuracy "
                               f"lines under a [model] or [\"*\"] table header")
            table[model] = {p: parse_fraction(v, f"{path}: [{model}] {p!r}") for p, v in cells.items()}
        return cls(Path(path), table)

    def patterns(self, model: str) -> dict[str, float]:
        merged = dict(self.table.get("*", {}))
        merged.update(self.table.get(model, {}))
        return merged

    def lookup(self, model: str, case_id: str) -> float | None:
        """The threshold of the last (most specific: model tables after ``*``) matching pattern."""
        found = None
        for pattern, value in self.patterns(model).items():
            if fnmatch.fnmatchcase(case_id, pattern):
                found = value
        return found

    def tables_for(self, model: str) -> list[str]:
        """The tables that apply to ``model``: ``"*"`` and the model's own, in that order."""
        return [t for t in ("*", model) if t in self.table]

    def missing_table(self, model: str) -> str | None:
        """A warning when the file has tables for models but none for ``model`` (a typo gates nothing)."""
        others = [t for t in self.table if t != "*"]
        if not others or model in self.table:
            return None
        rest = 'with the ["*"] table only' if "*" in self.table else "ungated by this file"
        tables = ", ".join(f"[{t}]" for t in others)
        return (f"{self.path}: no table for model {model!r}; the file has tables {tables} (a typo?). Name a table "
                f"[{toml_key(model)}] to gate this model; its cells run {rest}")

    def unused(self, model: str, case_ids: list[str]) -> list[str]:
        """Patterns for ``model`` (and of the ``["*"]`` table, shown as ``[*] pattern``) that match no cell:
        usually a typo that would silently gate nothing."""
        def idle(patterns: dict[str, float]) -> list[str]:
            return [p for p in patterns if not any(fnmatch.fnmatchcase(c, p) for c in case_ids)]

        return idle(self.table.get(model, {})) + [f"[*] {p}" for p in idle(self.table.get("*", {}))
                                                  if model != "*"]


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


#: The first lines of a file this creates.
HEADER = ("# pytest-hac thresholds ([model] \"cell\" = minimum accuracy), see the README's \"Thresholds files\".\n"
          "# Entries written by --hac-update-thresholds: the cell's measured accuracy minus the margin, rounded down\n"
          "# to two decimals, for reruns on the same images and seeds (on another sample use --hac-gate=lenient).\n"
          "# Edit freely: comments and patterns are kept on the next update.\n")


_HEADER_LINE = re.compile(r"^\s*\[[^\[\]]+\]\s*(#.*)?$")


_VALUE = re.compile(r"^(?P<head>[^=]+=\s*)(?P<value>[-+0-9.eE_infa]+)(?P<tail>\s*(#.*)?)$")


def threshold_of(accuracy: float, margin: float) -> float | None:
    """``accuracy - margin`` rounded down to two decimals; None when that is 0 or less (it would gate nothing)."""
    value = math.floor((accuracy - margin) * 100 + 1e-9) / 100
    return value if value > 0 else None


def _header_name(line: str) -> str | None:
    """The table a ``[name]`` line opens (None for dotted or odd headers)."""
    if not _HEADER_LINE.match(line):
        return None
    try:
        parsed = tomllib.loads(line.strip())
    except tomllib.TOMLDecodeError:
        return None
    name = next(iter(parsed), None)
    return name if name is not None and parsed[name] == {} else None


def _entry_key(line: str) -> str | None:
    """The key of a one-line ``key = value`` entry (None for comments, blanks and anything else)."""
    if "=" not in line or line.lstrip().startswith("#"):
        return None
    try:
        parsed = tomllib.loads(line)
    except tomllib.TOMLDecodeError:
        return None
    return next(iter(parsed)) if len(parsed) == 1 else None


def update_text(text: str, model: str, values: dict[str, float]) -> str:
    """``text`` (a thresholds file, maybe empty) with ``values`` (cell id -> threshold) in the ``[model]`` table."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _header_name(line) == model), None)
    if start is None:
        block = [f"[{toml_key(model)}]"] + [f"{toml_key(cell)} = {value:.2f}" for cell, value in values.items()]
        body = "\n".join(lines).rstrip("\n")
        return (body + "\n\n" if body else "") + "\n".join(block) + "\n"
    end = next((i for i in range(start + 1, len(lines)) if _HEADER_LINE.match(lines[i])), len(lines))
    last, written = start, set()
    for i in range(start + 1, end):
        key = _entry_key(lines[i])
        if key is None:
            continue
        last = i
        if key in values:
            match = _VALUE.match(lines[i])
            if match is None:
                raise HacError(f"[{model}] {key!r}: cannot update its value in place ({lines[i].strip()!r}); write "
                               f"it as \"{key}\" = 0.5 on one line")
            lines[i] = f"{match['head']}{values[key]:.2f}{match['tail']}"
            written.add(key)
    added = [f"{toml_key(cell)} = {value:.2f}" for cell, value in values.items() if cell not in written]
    lines[last + 1:last + 1] = added
    return "\n".join(lines) + "\n"


def update_file(path: Path, model: str, values: dict[str, float]) -> list[str]:
    """Write ``values`` into the thresholds file ``path`` (created if missing), atomically; the lines written."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    except (OSError, UnicodeDecodeError) as exc:
        raise HacError(f"cannot read thresholds file {path} to update it: {exc}") from None
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HacError(f"thresholds file {path} is not valid TOML ({exc}): fix it before updating it") from None
    new = update_text(text, model, values)
    table = tomllib.loads(new).get(model, {})
    wrong = [cell for cell, value in values.items() if table.get(cell) != float(f"{value:.2f}")]
    if wrong:  # never leave a file that says something else than what the run reports it wrote
        raise HacError(f"updating {path} went wrong for {wrong}; nothing was written")
    atomic_write(path, new)
    return [f"[{model}] \"{cell}\" = {value:.2f}" for cell, value in values.items()]
