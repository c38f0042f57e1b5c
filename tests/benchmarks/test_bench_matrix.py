"""(a) the smoke matrix: the engine against a naive per-cell loop; (c) the share spent on distinct attacks.

The naive loop evaluates every cell with a fresh :class:`Engine` (batched, but sharing nothing), so it runs
the same seeded attacks on the same images and must give the same numbers; the ratio of the two times is
what reuse buys. Each benchmark runs everything it compares itself: either one runs alone, in any order,
under ``-k`` or xdist.
"""
import importlib.util
import time
from pathlib import Path

from pytest_hac.core.cells.cases import expand
from pytest_hac.core.engine.engine import Engine

SMOKE = Path(__file__).parents[2] / "suites" / "test_smoke.py"
#: (c): the whole smoke matrix may take at most this many times the time of its distinct attacks: the cells'
#: attacks and the soundness probes' (attacks at a large eps, computed once per defense, as the cells' are).
ATTACK_SHARE_GOAL = 1.3


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


def run_engine(model, data, cases):
    """Every cell through one engine: (results, the engine, seconds)."""
    start = time.perf_counter()
    engine = Engine(model, data, batch_size="auto")
    results = [engine.evaluate(c) for c in cases]
    return results, engine, time.perf_counter() - start


def run_naive(model, data, cases):
    """Every cell through a fresh engine, nothing shared: (results, attack batches run, seconds)."""
    start = time.perf_counter()
    results, attack_batches = [], 0
    for c in cases:
        engine = Engine(model, data, batch_size="auto")
        results.append(engine.evaluate(c))
        attack_batches += engine.counters.attack_batches
    return results, attack_batches, time.perf_counter() - start


def warm_up(model, data, cases):
    """Every cell once on one image: lazy imports and first calls are paid before anything is timed."""
    from pytest_hac.data import load_dataset

    run_engine(model, load_dataset("embedded", resize=model.resize_size, crop=model.input_size, samples=1), cases)


def _stage_seconds(engine):
    return {f"seconds_{stage}": round(seconds, 2) for stage, seconds in engine.seconds.items()}


def test_smoke_matrix_engine_against_a_naive_per_cell_loop(benchmark, lite0, embedded_photos):
    """(a) the engine gives the naive loop's numbers with fewer attacks, in less time."""
    cases = smoke_cases()
    warm_up(lite0, embedded_photos, cases)
    naive, naive_attack_batches, naive_seconds = run_naive(lite0, embedded_photos, cases)
    results, engine, seconds = benchmark.pedantic(run_engine, args=(lite0, embedded_photos, cases), rounds=1,
                                                  iterations=1)
    benchmark.extra_info.update({
        "cells": len(cases), "images": len(embedded_photos), "seconds_total": round(seconds, 2),
        "naive_seconds_total": round(naive_seconds, 2), "naive_over_engine": round(naive_seconds / seconds, 2),
        "attack_batches": engine.counters.attack_batches, "naive_attack_batches": naive_attack_batches,
        **_stage_seconds(engine), "counters": engine.counters.to_dict(),
    })
    assert len(results) == len(naive) == len(cases)
    assert _outcomes(results) == _outcomes(naive), \
        "the engine and the naive loop run the same seeded attacks on the same images: their numbers must agree"
    assert engine.counters.attack_batches < naive_attack_batches, (
        f"the engine ran {engine.counters.attack_batches} attack batches, the naive loop "
        f"{naive_attack_batches}: sharing attacks between cells should run fewer")
    assert seconds < naive_seconds, (
        f"(a) goal missed: the engine took {seconds:.1f} s for the smoke matrix, the naive per-cell loop "
        f"{naive_seconds:.1f} s; reuse should make the engine faster")


def test_smoke_matrix_costs_little_more_than_its_distinct_attacks(benchmark, lite0, embedded_photos):
    """(c) the whole matrix takes at most ATTACK_SHARE_GOAL times the time of its distinct attacks."""
    cases = smoke_cases()
    warm_up(lite0, embedded_photos, cases)
    results, engine, seconds = benchmark.pedantic(run_engine, args=(lite0, embedded_photos, cases), rounds=1,
                                                  iterations=1)
    attacks = engine.seconds["attack"] + engine.seconds["probe"]
    benchmark.extra_info.update({
        "cells": len(cases), "images": len(embedded_photos), "seconds_total": round(seconds, 2),
        **_stage_seconds(engine), "attack_share": round(attacks / seconds, 3),
        "total_over_attack": round(seconds / attacks, 3), "goal_total_over_attack": ATTACK_SHARE_GOAL,
        # without the soundness probes: the cells' own attacks only
        "total_over_cell_attacks": round(seconds / engine.seconds["attack"], 3),
        "counters": engine.counters.to_dict(),
    })
    assert len(results) == len(cases)
    assert seconds <= ATTACK_SHARE_GOAL * attacks, (
        f"(c) goal missed: the smoke matrix took {seconds:.1f} s, {seconds / attacks:.2f} x the {attacks:.1f} s "
        f"of its distinct attacks (cells' {engine.seconds['attack']:.1f} s, soundness probes' "
        f"{engine.seconds['probe']:.1f} s; goal <= {ATTACK_SHARE_GOAL} x); codec {engine.seconds['codec']:.1f} s, "
        f"predict {engine.seconds['predict']:.1f} s")
