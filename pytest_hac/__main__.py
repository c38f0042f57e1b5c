"""``python -m pytest_hac merge reports/*.json``: combine shard reports into one report and verdict."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import HacError
from .report import Report, load_report, markdown, write_report
from .soundness import markdown_section


def merge(reports: list[Report]) -> Report:
    """One report from shards of the same model, data and images; later shards win on duplicate cells."""
    if not reports:
        raise HacError("nothing to merge")
    first = reports[0]
    results = {}
    for rep in reports:
        for key in ("model", "dataset", "ids", "seed"):
            if getattr(rep, key) != getattr(first, key):
                raise HacError(f"cannot merge reports with different {key}: {getattr(first, key)!r} vs "
                               f"{getattr(rep, key)!r}")
        for r in rep.results:
            results[r.case_id] = r
    merged = Report(model=first.model, dataset=first.dataset, n=first.n, device=first.device, seed=first.seed,
                    gate_rule=first.gate_rule, ids=first.ids, results=list(results.values()),
                    complete=all(r.complete for r in reports), meta=first.meta,
                    notes=sorted({n for r in reports for n in r.notes}))
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pytest-hac", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge", help="merge shard reports (JSON) into one report; exit 1 if any cell failed")
    m.add_argument("reports", nargs="+", type=Path)
    m.add_argument("-o", "--output", type=Path, default=Path("reports/merged"), help="output folder")
    args = parser.parse_args(argv)
    try:
        merged = merge([load_report(p) for p in args.reports])
    except HacError as exc:
        print(f"pytest-hac: {exc}", file=sys.stderr)
        return 2
    paths = write_report(merged, args.output, plot=True, extra_sections=[markdown_section(merged.results)])
    counts = merged.counts
    print(markdown(merged).split("## Cells")[0].rstrip())
    print(f"\nmerged {len(args.reports)} reports: {counts['cells']} cells, {counts['passed']} passed, "
          f"{counts['failed']} failed -> {paths['md']}")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
