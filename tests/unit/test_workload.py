"""The plan's count of work (--hac-plan) is the work the engine then does: shared work counted once."""
import pytest

from pytest_hac.attacks import make_spec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.cells.defense import IDENTITY, Defense
from pytest_hac.core.engine.engine import Engine
from pytest_hac.core.engine.workload import planned_passes, seconds, warm_up, weights, workload

PGD = make_spec("pgd", "8/255", steps=3, restarts=2)


def case(codec, quality, rounds, threat):
    q = "" if quality is None else f"-q{quality}"
    return Case(codec, quality, rounds, threat, None if threat == "clean" else PGD,
                id=f"{codec}{q}-r{rounds}-{threat}")


CASES = [case("jpeg", 50, r, t) for r in (1, 2) for t in ("clean", "oblivious", "whitebox")] + [
    case("identity", None, 1, "clean"), case("identity", None, 1, "oblivious")]


@pytest.fixture(scope="module")
def engine():
    from pytest_hac.data import load_dataset
    from pytest_hac.models import get_model

    model = get_model("tiny-cnn")
    data = load_dataset("digits", resize=model.resize_size, crop=model.input_size, samples=8)
    return Engine(model, data, batch_size=4)


def test_planned_passes_are_the_passes_the_engine_runs(engine):
    works = workload(engine, CASES)
    by_id = {w.case_id: w for w in works}
    assert by_id["jpeg-q50-r1-oblivious"].attack == 8 * 3 * 2 and "8 images x 3 steps x 2 restarts" in by_id[
        "jpeg-q50-r1-oblivious"].attack_text
    assert by_id["jpeg-q50-r2-oblivious"].attack == 0 and "shared" in by_id["jpeg-q50-r2-oblivious"].attack_text
    assert by_id["jpeg-q50-r2-clean"].codec == 8  # round 1 came with the r1 cell: only round 2 is new
    assert by_id["identity-r1-oblivious"].attack == 0 and by_id["identity-r1-oblivious"].model == 2 * 8
    engine.plan(CASES)
    for c in CASES:
        engine.evaluate(c)
    counters = engine.counters
    # the plan counts every set on every image: the most the engine runs (the cascade attacks, codes and
    # classifies only the survivors of a cell's earlier sets)
    assert sum(w.attack for w in works) >= counters.attack_images * PGD.steps
    assert sum(w.codec for w in works) >= counters.codec_batches * 4
    assert sum(w.model for w in works) >= counters.predict_batches * 4
    assert all(v >= 0 for v in weights(engine, CASES).values())


def test_warm_up_times_each_kind_of_pass(engine):
    works = workload(engine, CASES)
    timing = warm_up(engine, works)
    assert timing.predict > 0
    assert set(timing.gradient) == {("bare", IDENTITY), ("approximate", Defense("jpeg", 50, 1)),
                                    ("approximate", Defense("jpeg", 50, 2))}
    assert all(t > 0 for t in timing.codec.values())
    estimates = {w.case_id: seconds(w, timing) for w in works}
    assert estimates["jpeg-q50-r1-whitebox"] > estimates["jpeg-q50-r1-clean"] > 0


def test_planned_probes_are_the_probes_the_engine_runs_each_once():
    """Every soundness probe (zero-gradient, large-eps, undefended large-eps, steps 2x) is planned once per key,
    at the first cell that runs it, and the plan's batches are the batches the engine's probes run."""
    from pytest_hac.core.engine.workload import probe_seconds

    fresh = Engine(_model(), _data(), batch_size=4, soundness="thorough")
    works = workload(fresh, CASES)
    probes = [p for w in works for p in w.probes]
    kinds = [p.kind for p in probes if p.attack]
    assert kinds.count("zero-gradient") == 3  # bare, and jpeg q50 through its approximation at 1 and 2 rounds
    assert kinds.count("large-eps") == 2 and kinds.count("undefended large-eps") == 1  # shared by every cell
    assert kinds.count("steps 2x") == 6  # restarts x (bare, the whitebox r1 and r2 paths)
    undefended = next(p for p in probes if p.kind == "undefended large-eps")
    assert undefended.attack == 8 * 3 and undefended.model == 8 and undefended.target == ("bare", IDENTITY)
    by_id = {w.case_id: w for w in works}
    assert by_id["jpeg-q50-r1-clean"].probes == [] and by_id["jpeg-q50-r1-oblivious"].probe_passes > 0
    assert all(w.weight >= w.probe_passes for w in works)
    fresh.plan(CASES)
    for c in CASES:
        fresh.evaluate(c)
    planned = sum((p.images // 4 if p.attack or p.queries else 0) + p.codec // 4 + p.model // 4 for p in probes)
    assert planned == fresh.counters.probe_batches > 0
    # the time left counts passes by kind as the batches do: the plan's cells and probes, every set on every
    # image, are the most that runs (the cascade attacks only the survivors of a cell's earlier sets)
    ran = {kind: int(n) for kind, n in fresh.batches.passes.items()}
    planned_kinds = planned_passes(works)
    assert set(ran) == set(planned_kinds) and all(ran[k] <= planned_kinds[k] for k in ran)
    assert ran["attack:approximate"] < planned_kinds["attack:approximate"]
    assert {"attack:bare", "attack:approximate", "codec", "predict"} <= set(fresh.batches.passes)
    timing = warm_up(fresh, works)
    assert ("approximate", Defense("jpeg", 50, 2)) in timing.gradient
    assert probe_seconds(by_id["jpeg-q50-r1-whitebox"], timing) > 0


def _model():
    from pytest_hac.models import get_model

    return get_model("tiny-cnn")


def _data():
    from pytest_hac.data import load_dataset

    model = _model()
    return load_dataset("digits", resize=model.resize_size, crop=model.input_size, samples=8)
