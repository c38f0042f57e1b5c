"""The cascade's cost: an adaptive JPEG matrix, an adaptive learned-codec cell against its white-box twin, and the
soundness probes' share, on tiny-cnn and 32-px digits (``HAC_BENCH_DIGITS``, default 256).

Each benchmark records what it measured in ``extra_info`` (attacked images per set, seconds per cell, the probes'
seconds): the numbers the cascade changes. Run on the commit before the cascade for the "before"::

    HAC_BENCH=1 pytest tests/benchmarks/test_bench_cascade.py -o addopts= --benchmark-json=cascade.json

(``-o addopts=``: the ini's ``--dist loadgroup`` makes pytest-benchmark disable itself and save nothing.)
"""
import os
import time

import pytest

from pytest_hac.attacks import make_spec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.engine.engine import Engine

PGD = make_spec("pgd", "8/255", steps=10)


def cell(codec, quality, threat, attack=PGD):
    attack = None if threat == "clean" else attack
    return Case(codec, quality, 1, threat, attack, id=f"{codec}-q{quality}-{threat}")


#: identity and JPEG q30/60/90 x clean/oblivious/adaptive (the identity's adaptive cell is its oblivious one).
MATRIX = [cell("identity", None, t) for t in ("clean", "oblivious")] + [
    cell("jpeg", q, t) for q in (30, 60, 90) for t in ("clean", "oblivious", "adaptive")]


@pytest.fixture(scope="module")
def digits():
    from pytest_hac.data import load_dataset
    from pytest_hac.models import get_model

    n = int(os.environ.get("HAC_BENCH_DIGITS", "256"))
    return get_model("tiny-cnn"), load_dataset("digits", resize=32, crop=32, samples=n)


def _run(model, data, cases):
    engine = Engine(model, data, batch_size="auto")
    engine.plan(cases)  # as the plugin does: a set a later cell needs on every image is computed on every image
    seconds, accuracy = {}, {}
    for c in cases:
        began = time.perf_counter()
        accuracy[c.id] = engine.evaluate(c).accuracy
        seconds[c.id] = round(time.perf_counter() - began, 2)
    return engine, seconds, accuracy


def test_adaptive_jpeg_matrix(benchmark, digits):
    model, data = digits
    engine, seconds, accuracy = benchmark.pedantic(_run, args=(model, data, MATRIX), rounds=1, iterations=1)
    benchmark.extra_info.update(
        images=len(data.labels), attack_images=engine.counters.attack_images, cell_seconds=seconds,
        accuracy=accuracy, probe_seconds=round(engine.seconds.get("probe", 0.0), 2),
        total_seconds=round(sum(seconds.values()), 2))


def test_learned_codec_adaptive_against_whitebox(benchmark, digits):
    """tiny-hific q2: the adaptive cell's ``approximate`` path is the white-box attack (computed once)."""
    model, data = digits
    cases = [cell("tiny-hific", 2, "whitebox"), cell("tiny-hific", 2, "adaptive")]
    engine, seconds, accuracy = benchmark.pedantic(_run, args=(model, data, cases), rounds=1, iterations=1)
    white, adaptive = seconds[cases[0].id], seconds[cases[1].id]
    benchmark.extra_info.update(images=len(data.labels), cell_seconds=seconds, accuracy=accuracy,
                                attack_images=engine.counters.attack_images,
                                adaptive_over_whitebox=round(adaptive / white, 3))
