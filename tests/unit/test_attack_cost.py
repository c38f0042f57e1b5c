"""Long attacks say what they will cost before they start (core.cost)."""
import logging

from pytest_hac.attacks import make_spec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.engine import cost
from pytest_hac.core.engine.engine import Engine
from pytest_hac.data.builtin import digits
from pytest_hac.models import get_model


def _run(case, monkeypatch=None):
    seen = []
    engine = Engine(get_model("tiny-cnn"), digits(samples=6), batch_size=3,
                    progress=lambda stage, done, total: seen.append((stage, done, total)))
    result = engine.evaluate(case)
    return seen, result


def test_a_query_cell_states_its_planned_codec_passes_first():
    case = Case("tiny-mse", 1, 2, "query", make_spec("square", "8/255", queries=5), id="q")
    seen, _ = _run(case)
    first = next(s for s in seen if s[0].startswith("attack"))
    assert first[1] == 0, "the plan is shown before the first batch"
    assert "at most 60 codec passes (queries), about" in first[0]  # 6 images x 5 queries x 2 rounds


def test_a_short_gradient_cell_shows_no_plan(caplog):
    case = Case("tiny-mse", 1, 1, "adaptive", make_spec("pgd", "8/255", steps=2), id="a")
    with caplog.at_level(logging.WARNING, logger="pytest_hac"):
        seen, _ = _run(case)
    assert {s[0] for s in seen if s[0].startswith("attack")} == {"attack"}
    assert not caplog.records


def test_an_estimate_over_the_limit_is_logged(monkeypatch, caplog):
    monkeypatch.setattr(cost, "LONG_SECONDS", 0.0)
    monkeypatch.setattr(cost, "MEASURE_FROM_BATCHES", 1)
    case = Case("tiny-mse", 1, 1, "whitebox", make_spec("pgd", "8/255", steps=2), id="w")
    with caplog.at_level(logging.WARNING, logger="pytest_hac"):
        _run(case)
    assert any("12 codec passes (steps)" in r.getMessage() for r in caplog.records)


def test_only_long_gradient_attacks_are_timed():
    pgd, square = make_spec("pgd", "8/255", steps=10), make_spec("square", "8/255", queries=10)
    assert cost.worth_estimating(square, 4, 1, 16)
    assert not cost.worth_estimating(pgd, 32, 1, 32)  # 320 passes: timing two batches would cost 20 %
    assert cost.worth_estimating(pgd, 500, 1, 16)
    assert cost.planned_passes(make_spec("pgd", "8/255", steps=10, eot=2), 5, 3) == 300
