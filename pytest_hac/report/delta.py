"""``pytest-hac compare OLD.json NEW.json``: two saved runs cell by cell, with the baseline gate's paired test.

Each cell of NEW is held against OLD exactly as ``--hac-compare`` holds a run against its baseline
(:func:`pytest_hac.core.judge.comparison.compare`): same cell id and attack, Δ and the one-sided exact McNemar test
on the images both runs share.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..core.judge.comparison import Comparison, compare
from ..core.judge.stats import SIGNIFICANCE_LEVEL
from ..errors import HacError
from .schema import Report, load_report

LEGEND = ("Δ in percentage points on the images both runs share; p: one-sided exact McNemar test that NEW is "
          "worse (5%, the baseline gate's test). A cell whose attack differs in any parameter is not comparable.")


@dataclass(frozen=True)
class Row:
    """One cell of the comparison; ``comparison`` is None for a cell only one run has."""

    case_id: str
    comparison: Comparison | None
    only_in: str | None = None

    def verdict(self, fail: float | None) -> str:
        c = self.comparison
        if c is None:
            return f"only in {self.only_in}"
        if not c.comparable:
            return f"**not comparable**: {c.why}" if fail is not None else f"not comparable: {c.why}"
        if c.regression:
            return f"**REGRESSION** (significant, more than {fail:g} points)"
        if c.p_drop < SIGNIFICANCE_LEVEL:
            return "significant drop"
        if c.p_gain is not None and c.p_gain < SIGNIFICANCE_LEVEL:
            return "significant gain"
        return "no significant change"

    def failed(self, fail: float | None) -> bool:
        """Under ``--fail``: a significant drop beyond the margin, or a cell that cannot be compared (a weaker
        attack must not pass for an unchanged cell, as under ``--hac-fail-drop``)."""
        c = self.comparison
        return fail is not None and c is not None and (c.regression or not c.comparable)


def compare_reports(old: Report, new: Report, fail: float | None = None) -> list[Row]:
    """NEW's cells against OLD's, then OLD's cells NEW lacks. Raises for runs of other models or data."""
    for key in ("model", "dataset"):
        if getattr(old, key) != getattr(new, key):
            raise HacError(f"cannot compare runs with different {key}: {getattr(old, key)!r} (OLD) vs "
                           f"{getattr(new, key)!r} (NEW); compare like with like, as baselines do")
    rows = []
    for result in sorted(new.results, key=lambda r: r.case_id):
        comp = compare(result, old.results, fail)
        rows.append(Row(result.case_id, comp, None if comp is not None else "NEW"))
    newer = {r.case_id for r in new.results}
    rows += [Row(r.case_id, None, "OLD") for r in sorted(old.results, key=lambda r: r.case_id)
             if r.case_id not in newer]
    return rows


def compare_table(rows: list[Row], fail: float | None = None) -> str:
    """The rows as a Markdown table."""
    from tabulate import tabulate

    body = []
    for row in rows:
        c = row.comparison
        numbers = ["–"] * 5 if c is None or not c.comparable else [
            f"{c.baseline:.3f}", f"{c.current:.3f}", f"{c.delta_points:+.1f}", f"{c.compared}/{c.of}",
            f"{c.p_drop:.3g}"]
        body.append([f"`{row.case_id}`", *numbers, row.verdict(fail)])
    headers = ["cell", "OLD", "NEW", "Δ pts", "shared images", "p (drop)", "verdict"]
    return tabulate(body, headers, tablefmt="github", disable_numparse=True)


def compare_command(old_path: Path, new_path: Path, fail: float | None) -> int:
    """Print the comparison; exit 1 under ``fail`` on a regression or an incomparable cell, 2 on bad input."""
    try:
        if fail is not None and not 0 <= fail < float("inf"):
            raise HacError(f"--fail takes a margin in percentage points >= 0; got {fail}")
        old, new = load_report(old_path), load_report(new_path)
        rows = compare_reports(old, new, fail)
    except HacError as exc:
        print(f"pytest-hac: {exc}", file=sys.stderr)
        return 2
    print(f"# {new.model}: {new_path} (NEW) against {old_path} (OLD)\n\n{LEGEND}\n\n{compare_table(rows, fail)}\n")
    failed = [row for row in rows if row.failed(fail)]
    compared = sum(1 for row in rows if row.comparison is not None and row.comparison.comparable)
    print(f"{compared} cells compared, {sum(1 for r in rows if r.comparison is None)} in one run only"
          + (f"; FAILED: {len(failed)} cell(s) dropped significantly by more than {fail:g} points or cannot be "
             f"compared: " + ", ".join(r.case_id for r in failed) if failed else ""))
    return 1 if failed else 0
