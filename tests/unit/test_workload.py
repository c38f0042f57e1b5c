"""The plan's count of work (--hac-plan) is the work the engine then does: shared work counted once."""
import pytest

from pytest_hac.attacks import make_spec
from pytest_hac.core.cases import Case
from pytest_hac.core.engine import Engine
from pytest_hac.core.workload import measure, seconds, weights, workload

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
    assert sum(w.attack for w in works) == counters["attack_images"] * PGD.steps
    assert sum(w.codec for w in works) == counters["codec_batches"] * 4
    assert sum(w.model for w in works) == counters["predict_batches"] * 4
    assert all(v >= 0 for v in weights(engine, CASES).values())


def test_warm_up_times_each_kind_of_pass(engine):
    works = workload(engine, CASES)
    timing = measure(engine, works)
    assert timing.predict > 0
    assert set(timing.gradient) == {("bare", "identity", None, 1), ("approximate", "jpeg", 50, 1),
                                    ("approximate", "jpeg", 50, 2)}
    assert all(t > 0 for t in timing.codec.values())
    estimates = {w.case_id: seconds(w, timing) for w in works}
    assert estimates["jpeg-q50-r1-whitebox"] > estimates["jpeg-q50-r1-clean"] > 0
