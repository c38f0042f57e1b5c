"""Fixtures of the pytester-driven plugin tests."""
from dataclasses import dataclass
from pathlib import Path

import pytest

MYMODEL = """
import os
import torch
from pytest_hac.models import get_model


def build():
    model = get_model("efficientnet-lite0")
    if os.environ.get("DEGRADE"):
        # A planted regression: the model sees a heavily blurred image.
        inner = model.net
        blur = torch.nn.AvgPool2d(9, stride=1, padding=4)
        model.net = torch.nn.Sequential(blur, inner)
    return model
"""

ONE_CLEAN_CELL = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [75]}, threats=["clean"])
def test_clean(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
"""


@pytest.fixture
def project(suite, pytester):
    """A project with a user's model ``mymodel:build`` (EfficientNet-Lite0; blurred when ``DEGRADE`` is set)
    and one clean JPEG cell gated by its threshold (used by test_baselines.py and test_thresholds_files.py)."""
    p = suite(ONE_CLEAN_CELL)
    pytester.makepyfile(mymodel=MYMODEL)
    pytester.syspathinsert()
    return p


# --- one serial and one xdist run, shared by the tests that read them -----------------------------------

XDIST_PROJECT = {
    # six oblivious cells share one attack (the bare model's): loadgroup keeps them on one worker
    "test_shared.py": """
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 60, 90]}, rounds=[1, 2], threats=["clean", "oblivious"], attack="pgd",
                 eps="8/255", steps=2)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
""",
    # worst and white-box cells, whose verdicts read the oblivious twin, are grouped with the attacks they read
    "test_worst.py": """
import pytest

@pytest.mark.hac(codecs={"jpeg": [35, 85]}, threats=["clean", "oblivious", "whitebox", "worst"], attack="pgd",
                 eps="8/255", steps=2)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
""",
    # each cell writes the threads torch gave it, under the worker's name
    "test_threads.py": """
import os, pathlib
import pytest, torch

@pytest.mark.hac(codecs={"jpeg": [40, 70, 95], "identity": []}, threats=["clean"], min_accuracy=0.3)
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    pathlib.Path(f"threads-{worker}-{hac_case.id}.txt").write_text(str(torch.get_num_threads()))
""",
    "hac_thresholds.toml": '[tiny-cnn]\n"jpeg-q35-r1-clean" = 0.5\n"jpeg-q85-r1-clean" = 0.5\n',
    "pytest.ini": "[pytest]\n",
}
#: 12 + 8 + 4 cells
XDIST_CELLS = 24
XDIST_ARGS = ("--hac-model=tiny-cnn", "--hac-samples=32", "--hac-soundness=warn", "--hac-gallery=2",
              "--hac-progress=0.000001", "--junitxml=junit.xml")


@pytest.fixture
def threads_project(pytester) -> pytest.Pytester:
    """A project holding ``XDIST_PROJECT``'s test_threads.py (four clean cells that record their threads)."""
    pytester.makeini(XDIST_PROJECT["pytest.ini"])
    pytester.makepyfile(test_threads=XDIST_PROJECT["test_threads.py"])
    return pytester


@dataclass(frozen=True)
class XdistRun:
    """``XDIST_PROJECT`` run serially and with ``-n 2 --dist loadgroup`` (``XDIST_ARGS``): the two folders, what
    the parallel run printed, and the number of cells."""

    serial: Path
    parallel: Path
    output: str
    cells: int = XDIST_CELLS


@pytest.fixture(scope="session")
def xdist_run(tmp_path_factory, fresh_pytest) -> XdistRun:
    """The two runs, once per session (the tests that read them go to one worker: ``SHARED_RUNS`` in
    tests/conftest.py)."""
    folders = {}
    for name in ("serial", "parallel"):
        folders[name] = tmp_path_factory.mktemp(f"xdist-{name}")
        for file, text in XDIST_PROJECT.items():
            (folders[name] / file).write_text(text)
    # both at once, the serial one on one thread (it runs beside the two workers)
    runs = {"serial": fresh_pytest(folders["serial"], *XDIST_ARGS, OMP_NUM_THREADS="1"),
            "parallel": fresh_pytest(folders["parallel"], "-n", "2", "--dist", "loadgroup", *XDIST_ARGS)}
    outputs = {name: run.communicate(timeout=600)[0] for name, run in runs.items()}
    for name, out in outputs.items():
        assert runs[name].returncode == 0 and f"{XDIST_CELLS} passed" in out, f"{name}:\n{out[-3000:]}"
    return XdistRun(folders["serial"], folders["parallel"], outputs["parallel"])
