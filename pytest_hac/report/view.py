"""The matrix every rendering shows: rows (one per defense), columns (one per threat and full attack), each
entry's cell text and marks, and the legend. Markdown, the HTML page, the plot, the codecs-at-one-rate tables,
the gallery and the terminal summary all read it, so they name and order rows and columns alike.

It reads what the report decided (verdicts, the worst cases derived when it was built) and decides nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..attacks import Threat
from ..attacks.threats import rank
from ..core.judge.result import Result
from ..formats import accuracy
from .schema import Cell, Report

LEGEND = ("Accuracy is top-1 with its 95% Wilson interval in brackets. ❌ marks a failed cell (its reasons are in the "
          "Cells tables), ⚑ a cell a soundness check flagged under `--hac-soundness=warn`; a cell without a threshold "
          "is *measured*: reported, not gated. *partial* marks a worst case computed before all of its cells ran (an "
          "incomplete run, a shard or a selection). Δ is the change against the baseline in percentage points, on "
          "the images both runs share; ⚠ marks a significant drop beyond `--hac-fail-drop`. *worst case* counts "
          "an image only if the defense gets it right clean and under every attack tried (robust accuracy). bpp and "
          "PSNR are measured on the decoded images of each defense's clean cell (PSNR against the clean originals).")
#: The header of the worst-case column and table.
WORST_LABEL = "worst case"


def defense_key(r: Result) -> tuple:
    """A matrix row: codec, quality (-1 without one, so rows sort), rounds."""
    return (r.codec, -1 if r.quality is None else r.quality, r.rounds)


def defense_label(key: tuple) -> str:
    """A row's name in one word group: ``jpeg q50 r1``."""
    codec, quality, rounds = key
    return f"{codec}" + ("" if quality in (None, -1) else f" q{quality}") + f" r{rounds}"


def column_key(r: Result) -> tuple:
    """A matrix column: the threat and the whole attack."""
    return (r.threat, r.spec)


def columns(results: list[Result]) -> dict[tuple, str]:
    """Matrix column per threat x full attack, in threat order; labels grow only where two would collide."""
    keys: dict[tuple, Result] = {}
    for r in sorted(results, key=lambda r: (rank(r.threat), r.attack or "", r.eps or 0)):
        keys.setdefault(column_key(r), r)
    short = {k: (WORST_LABEL if r.threat is Threat.WORST else str(r.threat) if r.spec is None
                 else f"{r.threat} {r.attack} {r.spec.eps_label}") for k, r in keys.items()}
    clash = {label for label in short.values() if list(short.values()).count(label) > 1}
    return {k: (f"{r.threat} {r.spec.describe()}" if short[k] in clash else short[k]) for k, r in keys.items()}


def computed_worst(report: Report) -> list[Cell]:
    """The worst cases of defenses without a worst cell of their own (:attr:`Report.worst`), as cells of no test."""
    gated = {c.result.defense for c in report.cells if c.result.threat is Threat.WORST}
    return [Cell(test="", result=r) for r in report.worst if r.defense not in gated]


def all_cells(report: Report) -> list[Cell]:
    """The report's cells, then each defense's computed worst case."""
    return list(report.cells) + computed_worst(report)


def partial(report: Report) -> bool:
    """Worst cases computed from this report may lack cells that did not run (yet, or here)."""
    return not report.whole


@dataclass
class Entry:
    """One matrix cell: its result (every test on a case measures the same), the cell shown (a failed test's
    where one failed, else the last), and the marks of all its tests."""

    cell: Cell
    failed: bool = False
    warned: bool = False
    #: A worst case computed from an incomplete run, a shard or a selection.
    partial: bool = False

    @property
    def result(self) -> Result:
        return self.cell.result

    @property
    def text(self) -> str:
        """``0.85 [0.81, 0.89]``."""
        r = self.result
        return accuracy(r.accuracy, r.ci_low, r.ci_high)


@dataclass
class Row:
    """One defense: its entries by column label, and its rate and distortion (its clean cell's, else the first
    cell's with a bpp; ``source`` says which threat's cell they come from)."""

    key: tuple
    entries: dict[str, Entry] = field(default_factory=dict)
    bpp: float | None = None
    psnr: float | None = None
    source: Threat | None = None

    @property
    def label(self) -> str:
        return defense_label(self.key)


@dataclass(frozen=True)
class Matrix:
    headers: list[str]
    rows: list[Row]


def matrix(report: Report) -> Matrix:
    """Rows codec/quality/rounds, sorted; one column per threat x attack (the worst case last of all)."""
    extra = computed_worst(report)
    cells = list(report.cells) + extra
    cols = columns([c.result for c in cells])
    unfinished = partial(report)
    rows: dict[tuple, Row] = {}
    for c in cells:
        r = c.result
        row = rows.setdefault(defense_key(r), Row(defense_key(r)))
        label = cols[column_key(r)]
        entry = row.entries.get(label)
        if entry is None:
            entry = row.entries[label] = Entry(c, partial=c in extra and unfinished)
        elif c.failed or not entry.cell.failed:
            entry.cell = c
        entry.failed |= c.failed
        entry.warned |= bool(c.verdict.warnings)
        if r.bpp is not None and (r.threat is Threat.CLEAN or row.bpp is None):
            row.bpp, row.psnr, row.source = r.bpp, r.psnr, r.threat
    return Matrix(list(dict.fromkeys(cols.values())), [rows[k] for k in sorted(rows)])


def number(value: float | None, digits: int = 2) -> str:
    """A table's number, ``–`` where there is none."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def delta(cell: Cell) -> str:
    """`` (Δ +1.2 ⚠)`` against the baseline, `` (Δ n/a)``, or nothing without a baseline."""
    c = cell.comparison
    if c is None:
        return ""
    if not c.comparable:
        return " (Δ n/a)"
    flag = " ⚠" if c.regression else ""
    return f" (Δ {c.delta_points:+.1f}{flag})"


def matrix_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """The matrix as text rows (the Markdown report's and the terminal summary's): codec, quality, rounds, bpp,
    PSNR (with the threat whose cell they come from, where not the clean one), then the accuracy columns."""
    view = matrix(report)
    headers = ["codec", "quality", "rounds", "bpp", "PSNR dB"] + view.headers
    body = []
    for row in view.rows:
        note = "" if row.source in (None, Threat.CLEAN) else f" ({row.source})"
        codec, quality, rounds = row.key
        texts = {label: e.text + delta(e.cell) + (" ❌" if e.failed else "") + (" ⚑" if e.warned else "")
                 + (" *partial*" if e.partial else "") for label, e in row.entries.items()}
        body.append([codec, "–" if quality == -1 else str(quality), str(rounds), number(row.bpp) + note,
                     number(row.psnr, 1) + note] + [texts.get(h, "") for h in view.headers])
    return headers, body
