"""``pytest-hac merge reports/*.shard-*.json``: combine shard reports into one report and verdict;
``pytest-hac compare OLD.json NEW.json`` and ``pytest-hac trend DIR``: saved runs, compared;
``pytest-hac clear-cache DIR``: empty a disk cache (``--hac-cache=DIR``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.judge.soundness import implicating
from .errors import HacError
from .report.delta import compare_command
from .report.history import record_history
from .report.output import write_report
from .report.schema import Report, Scope, load_report
from .report.summary import append_step_summary, step_summary
from .report.trend import DEFAULT_LAST, trend_of
from .report.trend_view import trend_command


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
    if any(s is not None for s in shards) and any(s is None for s in shards):
        raise HacError("cannot merge shard reports with reports of whole runs")
    _check_one_run(reports)
    if shards[0] is not None:
        count = shards[0][1]
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
                  cells_hash=first.scope.cells_hash, thresholds_hash=first.scope.thresholds_hash)
    merged = Report(model=first.model, dataset=first.dataset, n=first.n, device=first.device, seed=first.seed,
                    gate_rule=first.gate_rule, ids=first.ids, cells=list(cells.values()),
                    complete=all(r.complete for r in reports), scope=scope,
                    skipped_images=sorted({i for r in reports for i in r.skipped_images}),
                    notes=sorted({n for r in reports for n in r.notes}),
                    references=[r for _, r in sorted(references.items())])
    _check_verdicts(merged, first.meta.get("soundness_mode", "fail"))
    merged.meta = _merged_meta(reports, merged)
    return merged


def _check_one_run(reports: list[Report]) -> None:
    """Reports that can be combined: the same settings (every one that changes a number or a verdict,
    :data:`pytest_hac.settings.DECIDING`) and images; shards also one shard count and one cell list with the same
    thresholds. Whatever the order of the files, the first difference found is named with each report's value."""
    shards = reports[0].scope.shard is not None
    reports = sorted(reports, key=lambda r: r.scope.shard or (0, 0))
    named = [f"shard {r.scope.shard[0]}/{r.scope.shard[1]}" if shards else f"report {i + 1}"
             for i, r in enumerate(reports)]

    def refuse(what: str, values: list) -> None:
        shown = ", ".join(f"{v!s} ({n})" for n, v in zip(named, values))
        raise HacError(f"these reports come from different runs: {what} differs ({shown}); run every shard with "
                       f"the same command line, ini and environment")

    if shards and len({r.scope.shard[1] for r in reports}) != 1:
        refuse("the shard count", [r.scope.shard[1] for r in reports])
    settings = [r.meta.get("settings") for r in reports]
    if any(s is None for s in settings) and any(s is not None for s in settings):
        refuse("the pytest-hac version (some reports record no settings)",
               ["none" if s is None else "recorded" for s in settings])
    for name in sorted({k for s in settings if s for k in s}):
        values = [(s or {}).get(name) for s in settings]
        if len(set(values)) != 1:
            refuse(f"--hac-{name.replace('_', '-')}", values)
    hashes = [r.meta.get("image_hashes") for r in reports]
    if any(h != hashes[0] for h in hashes):
        refuse("the evaluated images' content", ["another" if h != hashes[0] else "first" for h in hashes])
    if not shards:
        return
    if len({r.scope.cells_hash for r in reports}) != 1:
        refuse("the cell list (another marker, test file or attack parameter)", [r.scope.cells_hash for r in reports])
    if len({r.scope.thresholds_hash for r in reports}) != 1:
        refuse("the thresholds applied (another thresholds file or marker threshold)",
               [r.scope.thresholds_hash for r in reports])


def _check_verdicts(merged: Report, mode: str) -> None:
    """Each shard decided its cells with every cell they depend on; the merged findings must agree.

    Nothing is re-decided here: a finding on the merged results that implicates a cell its shard
    passed means the shards were not of one run (or were edited), and is an error.
    """
    if mode == "warn":
        return
    for cell in merged.cells:
        hits = implicating(merged.findings, cell.case_id, cell.result.diagnostics.cells or ())
        if hits and not cell.failed:
            finding, via = hits[0]
            raise HacError(f"shard verdicts disagree with the merged soundness findings: {finding.check} "
                           f"implicates {cell.case_id}" + (f" (through its part {via})" if via != cell.case_id else "")
                           + ", which its shard did not fail; merge reports of one run, written by one pytest-hac "
                           "version")


def _merged_meta(reports: list[Report], merged: Report) -> dict:
    """The first shard's meta, with what differs per shard summed or gathered over all of them (the merged
    report's soundness findings are its own, found over every shard's results when it was built)."""
    meta = dict(reports[0].meta)
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
    k = sub.add_parser("clear-cache", help="empty a disk cache (--hac-cache=DIR) before a run that must recompute")
    k.add_argument("directory", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    if args.command == "clear-cache":
        from .io.cache import DiskCache

        print(f"pytest-hac: removed {DiskCache(args.directory).clear()} entries from {args.directory}")
        return 0
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
