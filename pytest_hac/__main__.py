"""``pytest-hac merge reports/*.shard-*.json``: combine shard reports into one report and verdict;
``pytest-hac compare OLD.json NEW.json`` and ``pytest-hac trend DIR``: saved runs, compared."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.soundness import check, status
from .errors import HacError
from .report.delta import compare_command
from .report.history import record_history
from .report.output import write_report
from .report.schema import Report, Scope, load_report
from .report.summary import append_step_summary, step_summary
from .report.trend import DEFAULT_LAST, trend_of
from .report.trend_view import trend_command


def _describe(values: list) -> str:
    """A short account of differing values (image-id lists can hold thousands of names)."""
    shown = []
    for v in values:
        if isinstance(v, list) and len(v) > 3:
            shown.append(f"{len(v)} items starting {v[:2]!r}")
        else:
            shown.append(repr(v))
    return " vs ".join(shown)


def merge(reports: list[Report]) -> Report:
    """One report from the shards of one run: same model, data, images and seed; every shard exactly once.

    Reports of whole runs (not shards) merge too, as long as no test appears twice.
    """
    if not reports:
        raise HacError("nothing to merge")
    first = reports[0]
    for rep in reports[1:]:
        for key in ("model", "dataset", "seed"):
            if getattr(rep, key) != getattr(first, key):
                raise HacError(f"cannot merge reports with different {key}: {getattr(first, key)!r} vs "
                               f"{getattr(rep, key)!r}")
        if rep.ids != first.ids:
            differ = len(set(rep.ids) ^ set(first.ids))
            raise HacError(f"cannot merge reports on different images ({len(first.ids)} vs {len(rep.ids)} image ids, "
                           f"{differ} not in both): run every shard with the same --hac-data, --hac-samples and "
                           f"--hac-seed")
    shards = [r.scope.shard for r in reports]
    if any(s is not None for s in shards):
        if any(s is None for s in shards):
            raise HacError("cannot merge shard reports with reports of whole runs")
        count = shards[0][1]
        if any(s[1] != count for s in shards) or len({r.scope.cells_hash for r in reports}) != 1:
            raise HacError("these shards come from different runs (another shard count or another cell list: "
                           f"{_describe([f'{s[0]}/{s[1]}' for s in shards])})")
        seen = [s[0] for s in shards]
        duplicated = sorted({i for i in seen if seen.count(i) > 1})
        missing = sorted(set(range(1, count + 1)) - set(seen))
        if duplicated:
            raise HacError(f"shard(s) {', '.join(f'{i}/{count}' for i in duplicated)} given more than once")
        if missing:
            raise HacError(f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing: the merged report would "
                           f"silently lack their cells. Pass all {count} shard reports "
                           f"(<model>.shard-I-of-{count}.json)")
    cells = {}
    for rep in reports:
        for cell in rep.cells:
            if cell.test in cells:
                raise HacError(f"test {cell.test} appears in two reports: merge shards of one run, each once")
            cells[cell.test] = cell
    own = {c.case_id for c in cells.values()}
    references = {r.case_id: r for rep in reports for r in rep.references if r.case_id not in own}
    scope = Scope(selected=sum(r.scope.selected for r in reports), total=max(r.scope.total for r in reports),
                  cells_hash=first.scope.cells_hash)
    merged = Report(model=first.model, dataset=first.dataset, n=first.n, device=first.device, seed=first.seed,
                    gate_rule=first.gate_rule, ids=first.ids, cells=list(cells.values()),
                    complete=all(r.complete for r in reports), scope=scope,
                    skipped_images=sorted({i for r in reports for i in r.skipped_images}),
                    notes=sorted({n for r in reports for n in r.notes}),
                    references=[r for _, r in sorted(references.items())])
    _check_verdicts(merged, first.meta.get("soundness_mode", "fail"))
    merged.meta = _merged_meta(reports, merged)
    return merged


def _check_verdicts(merged: Report, mode: str) -> None:
    """Each shard decided its cells with every cell they depend on; the merged findings must agree.

    Nothing is re-decided here: a finding on the merged results that implicates a cell its shard
    passed means the shards were not of one run (or were edited), and is an error.
    """
    if mode == "warn":
        return
    by_id = {c.case_id: c for c in merged.cells}
    for finding in check(merged.checked):
        for case_id in finding.implicated or finding.cells:
            cell = by_id.get(case_id)
            if cell is not None and not cell.failed:
                raise HacError(f"shard verdicts disagree with the merged soundness findings: {finding.check} "
                               f"implicates {case_id}, which its shard did not fail; merge reports of one run, "
                               f"written by one pytest-hac version")


def _merged_meta(reports: list[Report], merged: Report) -> dict:
    """The first shard's meta, with what differs per shard recomputed over all of them."""
    meta = dict(reports[0].meta)
    results = merged.checked
    meta["soundness"] = {"status": status(results), "findings": [f.__dict__ for f in check(results)]}
    meta["attack_images"] = sum(int(r.meta.get("attack_images", 0)) for r in reports)
    meta["probe_seconds"] = round(sum(float(r.meta.get("probe_seconds", 0.0)) for r in reports), 3)
    meta["thresholds"] = sorted({line for r in reports for line in r.meta.get("thresholds", [])})
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pytest-hac", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge", help="merge shard reports (JSON) into one report; exit 1 if any cell failed")
    m.add_argument("reports", nargs="+", type=Path)
    m.add_argument("-o", "--output", type=Path, default=Path("reports/merged"), help="output folder")
    m.add_argument("--history", type=Path, metavar="DIR", help="add the merged run to this history folder")
    c = sub.add_parser("compare", help="compare two saved reports (JSON) cell by cell with the paired test")
    c.add_argument("old", type=Path, metavar="OLD.json")
    c.add_argument("new", type=Path, metavar="NEW.json")
    c.add_argument("--fail", type=float, metavar="POINTS", help="exit 1 on a significant drop of more than POINTS "
                   "percentage points (or a cell that cannot be compared)")
    t = sub.add_parser("trend", help="accuracy per cell across the runs in a history folder (--hac-history)")
    t.add_argument("directory", type=Path, metavar="DIR")
    t.add_argument("--last", type=int, default=DEFAULT_LAST, metavar="K", help="the last K runs (default %(default)s)")
    t.add_argument("--fail", type=float, metavar="POINTS", help="exit 1 on a significant drop of more than POINTS "
                   "points: the newest run's step or a drift")
    t.add_argument("--model", help="the model whose runs to show (default: the newest run's)")
    t.add_argument("-o", "--output", type=Path, default=Path("reports"),
                   help="where <model>.trend.md and .png go (default %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "compare":
        return compare_command(args.old, args.new, args.fail)
    if args.command == "trend":
        return trend_command(args.directory, last=args.last, fail=args.fail, model=args.model, output=args.output)
    try:
        merged = merge([load_report(p) for p in args.reports])
    except HacError as exc:
        print(f"pytest-hac: {exc}", file=sys.stderr)
        return 2
    trend = trend_of(args.history, merged) if args.history is not None and merged.whole else None
    paths = write_report(merged, args.output, plot=True, trend=trend)
    if args.history is not None and (entry := record_history(merged, args.history)) is not None:
        paths["history"] = entry
    append_step_summary(step_summary(merged, "auto"))
    counts = merged.counts
    for cell in merged.cells:
        if cell.failed:
            print(f"FAILED {cell.case_id}: " + "; ".join(str(r) for r in cell.reasons))
    print(f"merged {len(args.reports)} reports: {counts['cells']} cells, {counts['passed']} passed, "
          f"{counts['failed']} failed, {counts['measured']} measured, run {merged.status} -> {paths['md']}")
    return 1 if counts["failed"] or not merged.complete else 0


if __name__ == "__main__":
    sys.exit(main())
