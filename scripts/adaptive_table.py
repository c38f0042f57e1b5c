"""Oblivious, white-box and adaptive accuracy and the 64/255 probe per JPEG defense (issue 20, item 1).

    python scripts/adaptive_table.py                                  # tiny-cnn on 200 held-out digits
    python scripts/adaptive_table.py --model efficientnet-lite0 --data embedded --threats oblivious,whitebox,adaptive

Prints one Markdown row per defense: each threat's accuracy (correct/n), the 64/255 probe of the
white-box and adaptive cells (images still correct of the probe's 32) and the soundness checks that
compare them (informed-not-weaker, large-eps-through-defense). Runs through the engine's public API only,
so the same script measures an older checkout (``PYTHONPATH=<checkout>``).
"""
from __future__ import annotations

import argparse
import sys
import time

from pytest_hac.core.cells.cases import expand
from pytest_hac.core.engine.engine import Engine
from pytest_hac.core.judge import soundness
from pytest_hac.data import load_dataset
from pytest_hac.models import get_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-cnn")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--qualities", default="25,50")
    parser.add_argument("--rounds", default="1,2,3")
    parser.add_argument("--threats", default="clean,oblivious,whitebox,adaptive")
    parser.add_argument("--eps", default="4/255")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = get_model(args.model)
    data = load_dataset(args.data, resize=model.resize_size, crop=model.input_size, samples=args.samples,
                        seed=args.seed)
    threats = args.threats.split(",")
    matrix = {"codecs": {"jpeg": [int(q) for q in args.qualities.split(",")]},
              "rounds": [int(r) for r in args.rounds.split(",")], "threats": threats, "attack": "pgd",
              "eps": args.eps}
    cases = expand(matrix, {})
    engine = Engine(model, data, seed=args.seed)
    engine.plan(cases)
    began = time.perf_counter()
    results = []
    for case in cases:  # one line per cell on stderr as it finishes, so a long run shows where it is
        results.append(engine.evaluate(case))
        print(f"{case.id}: {results[-1].accuracy:.2f} ({time.perf_counter() - began:.0f} s)", file=sys.stderr,
              flush=True)
    findings = soundness.check(results)
    print(f"{args.model} on {len(data)} {args.data} images, pgd {args.eps}, seed {args.seed}: "
          f"{time.perf_counter() - began:.0f} s, {engine.counters.attack_images} attacked images")
    informed = [t for t in threats if t in ("whitebox", "adaptive")]
    print("| defense | " + " | ".join(threats) + "".join(f" | {t} 64/255" for t in informed) + " | findings |")
    print("|---" * (2 + len(threats) + len(informed)) + "|")
    for defense in dict.fromkeys(r.defense for r in results):
        row = {r.threat: r for r in results if r.defense == defense}
        cells = [f"{row[t].accuracy:.2f} ({row[t].correct_count}/{row[t].n})" for t in threats]
        for t in informed:
            p = row[t].diagnostics.get("large_eps")
            cells.append("–" if p is None else f"{p['correct']}/{p['n']}")
        ids = {r.case_id for r in row.values()}
        flagged = sorted({f.check for f in findings if set(f.cells) & ids})
        print(f"| {'-'.join(map(str, defense))} | " + " | ".join(cells) + f" | {', '.join(flagged) or 'ok'} |")


if __name__ == "__main__":
    main()
