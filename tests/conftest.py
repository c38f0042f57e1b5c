"""Fixtures shared by pytest-hac's own tests (unit/, plugin/, reliability/, benchmarks/).

Fixtures used by one folder only live in that folder's conftest.py.
"""
# Imported before any in-process pytester run: pytester forgets the modules first imported during a run,
# and importing these a second time makes torch register an operator library twice (RuntimeError).
# torch imports _dynamo lazily, on the first attack or optimizer step.
import json

import hypothesis.internal.observability  # noqa: F401
import pytest
import torch  # noqa: F401
import torch._dynamo  # noqa: F401

pytest_plugins = ["pytester"]

FOUR_CLEAN_CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 60, 90], "identity": []}, threats=["clean"], min_accuracy=0.3)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
"""
LIVE_REPORT_CELLS = """
import json, pathlib
import pytest

@pytest.mark.hac(codecs={"jpeg": [50, 75]}, threats=["clean"], min_accuracy={"clean": 0.5})
def test_a(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)

def test_b_report_already_holds_finished_cells():
    data = json.loads(pathlib.Path("reports/efficientnet-lite0.json").read_text())
    assert {r["case_id"] for r in data["results"]} == {"jpeg-q50-r1-clean", "jpeg-q75-r1-clean"}
    assert data["complete"] is False
"""


@pytest.fixture
def suite(pytester: pytest.Pytester):
    """A pytester project: ``suite(source, ini)`` writes ``test_cells.py`` and a ``pytest.ini``."""

    def make(source: str, ini: str = "") -> pytest.Pytester:
        pytester.makeini(f"[pytest]\n{ini}\n")
        pytester.makepyfile(test_cells=source)
        return pytester

    return make


@pytest.fixture
def four_clean_cells() -> str:
    """A test module: JPEG q30/60/90 and the bare model, clean, gated at 0.3 (four cells on the default model)."""
    return FOUR_CLEAN_CELLS


@pytest.fixture
def live_report_cells() -> str:
    """A test module: two clean JPEG cells on the default model, gated at 0.5, then a test that reads the
    report while the run goes on (it holds both cells, not yet complete)."""
    return LIVE_REPORT_CELLS


@pytest.fixture
def report_cells():
    """``report_cells(path)``: test id -> (case id, accuracy, correct, bpp, verdict) of a JSON report, and the JSON."""

    def read(path) -> tuple[dict, dict]:
        data = json.loads(path.read_text())
        cells = {r["test"]: (r["case_id"], r["accuracy"], r["correct"], r["bpp"], r["verdict"])
                 for r in data["results"]}
        return cells, data

    return read
