"""(a) the smoke matrix: the engine against a naive per-cell loop; (c) the share spent on distinct attacks.

The naive loop evaluates every cell with a fresh :class:`Engine` (batched, but
sharing nothing), so it runs the same seeded attacks on the same images and
must give the same numbers; the ratio of the two times is what reuse buys.
"""
import importlib.util
import time
from pathlib import Path

from pytest_hac.core.cases import expand
from pytest_hac.core.engine import Engine

SMOKE = Path(__file__).parents[2] / "suites" / "test_smoke.py"
#: Timings shared between the two benchmarks of this module (the naive one reports the ratio).
TIMES: dict[str, float] = {}
OUTCOMES: dict[str, dict] = {}


def smoke_cases():
    """Exactly the cells of suites/test_smoke.py, read from its markers."""
    spec = importlib.util.spec_from_file_location("hac_smoke_suite", SMOKE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defaults = {"attack": "pgd", "eps": "4/255", "steps": None}
    return [c for fn in (module.test_jpeg_defense, module.test_undefended_reference)
            for c in expand(fn.pytestmark[0].kwargs, defaults)]


def _outcomes(results):
    return {r.case_id: (r.correct, r.bpp) for r in results}


def test_smoke_matrix_engine(benchmark, lite0, photos):
    cases = smoke_cases()
    engines = []

    def run():
        engine = Engine(lite0, photos, batch_size="auto")
        engines.append(engine)
        return [engine.evaluate(c) for c in cases]

    start = time.perf_counter()
    results = benchmark.pedantic(run, rounds=1, iterations=1)
    total = time.perf_counter() - start
    engine = engines[-1]
    attacks = engine.seconds["attack"]
    TIMES["engine"], OUTCOMES["engine"] = total, _outcomes(results)
    benchmark.extra_info.update({
        "cells": len(cases), "images": len(photos),
        "distinct_attacks": sum(1 for k in engine.store._items if k[0] == "adv"),
        "seconds_total": round(total, 2), "seconds_attack": round(attacks, 2),
        "seconds_codec": round(engine.seconds["codec"], 2), "seconds_predict": round(engine.seconds["predict"], 2),
        # (c): goal total <= 1.3 x the time of the distinct attacks
        "attack_share": round(attacks / total, 3), "total_over_attack": round(total / attacks, 3),
        "meets_goal": total <= 1.3 * attacks,
        "counters": dict(engine.counters),
    })
    assert len(results) == len(cases)


def test_smoke_matrix_naive_per_cell_loop(benchmark, lite0, photos):
    cases = smoke_cases()
    attack_batches = []

    def run():
        out = []
        for c in cases:
            engine = Engine(lite0, photos, batch_size="auto")  # nothing shared between cells
            out.append(engine.evaluate(c))
            attack_batches.append(engine.counters["attack_batches"])
        return out

    start = time.perf_counter()
    results = benchmark.pedantic(run, rounds=1, iterations=1)
    total = time.perf_counter() - start
    benchmark.extra_info.update({"cells": len(cases), "images": len(photos), "seconds_total": round(total, 2),
                                 "attack_batches": sum(attack_batches)})
    if "engine" in TIMES:
        benchmark.extra_info["naive_over_engine"] = round(total / TIMES["engine"], 2)
        assert _outcomes(results) == OUTCOMES["engine"]  # same attacks, same images, same numbers
