"""False-alarm and detection rates of ``--hac-fail-drop`` (the baseline regression gate).

    python scripts/compare_fail_rates.py                              # embedded default, 8 seeds
    python scripts/compare_fail_rates.py --model tiny-cnn --seeds 20  # 500 held-out digits

Seed 0 is the baseline. Every other seed is a rerun of the *unchanged* model (the attacks' random starts
differ); a run whose gate fails any cell is a false alarm. For detection, each rerun's per-image outcomes
get a planted drop: in every cell, ``--drop`` of the images (rounded up, at least one) that were right
become wrong, as a regression of that size would do; the gate should fail. The gate is exactly the
plugin's: ``pytest_hac.core.judge.comparison.compare`` (McNemar on the same images) with the margin ``--margin``.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import random

from pytest_hac.core.cells.cases import expand
from pytest_hac.core.engine.engine import Engine
from pytest_hac.core.judge.comparison import compare
from pytest_hac.core.judge.result import Result
from pytest_hac.data import load_dataset
from pytest_hac.models import get_model
from pytest_hac.report.schema import Report

#: The smoke suite's attacked cells at one quality (clean cells are deterministic: they never differ).
MATRIX = {"codecs": {"jpeg": [50]}, "rounds": [1], "threats": ["clean", "oblivious", "whitebox"],
          "attack": "pgd", "eps": "4/255"}


def run(model, data, seed: int) -> list[Result]:
    engine = Engine(model, data, seed=seed)
    return [engine.evaluate(case) for case in expand(MATRIX, {})]


def plant(result: Result, fraction: float, rng: random.Random) -> Result:
    right = [i for i, ok in enumerate(result.correct) if ok]
    k = min(len(right), max(1, math.ceil(fraction * result.n)))
    flip = set(rng.sample(right, k))
    correct = [ok and i not in flip for i, ok in enumerate(result.correct)]
    return dataclasses.replace(result, correct=correct, accuracy=sum(correct) / len(correct))


def fails(results: list[Result], base: Report, margin: float) -> bool:
    return any(c is not None and c.regression for c in (compare(r, base.results, margin) for r in results))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--seeds", type=int, default=8, help="runs including the baseline (seed 0)")
    parser.add_argument("--margin", type=float, default=2.0, help="--hac-fail-drop margin in points")
    parser.add_argument("--drop", type=float, default=0.05, help="planted drop as a fraction of the images")
    args = parser.parse_args(argv)

    model = get_model(args.model)
    data = load_dataset("digits" if args.model.startswith("tiny-") else "embedded",
                        resize=model.resize_size, crop=model.input_size)
    base_results = run(model, data, 0)
    base = Report(model=model.name, dataset=data.name, n=len(data.labels), device="cpu", seed=0, gate_rule="ci",
                  results=base_results)
    rng = random.Random(0)
    alarms = detections = 0
    for seed in range(1, args.seeds):
        results = run(model, data, seed)
        alarm = fails(results, base, args.margin)
        detected = fails([plant(r, args.drop, rng) for r in results], base, args.margin)
        alarms += alarm
        detections += detected
        accs = " ".join(f"{r.case_id}={r.accuracy:.3f}" for r in results)
        print(f"seed {seed}: false alarm {alarm}, planted drop detected {detected}  ({accs})", flush=True)
    reruns = args.seeds - 1
    print(f"\n{model.name} on {data.name} (n={len(data.labels)}), margin {args.margin} points, "
          f"planted drop {100 * args.drop:.0f}%: false alarms {alarms}/{reruns}, detections {detections}/{reruns}")


if __name__ == "__main__":
    main()
