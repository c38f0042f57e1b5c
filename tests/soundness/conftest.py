"""The planted codecs' runs, shared by the tests that read them: one serial run (terminal, JSON, JUnit), the same
under ``-n 2``, two shards, a shard run with ``--hac-soundness=warn`` and a ``--hac-update-thresholds`` run, all on
one disk cache (each attack runs once; the later runs reuse it)."""
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent

PLANTED_CONFTEST = f"""
import sys

sys.path.insert(0, {str(TESTS)!r})
from soundness import planted


def pytest_hac_register(registry, config):
    planted.register(registry)
"""

# Items 1-3 of the soundness issue: a masked stand-in gradient that the identity-backward path would hide in the
# adaptive cell and the worst cell, and a stand-in that is another function. Gates that every planted cell clears
# on its numbers: only the soundness findings can fail them.
PLANTED_CELLS = """
import pytest

@pytest.mark.hac(codecs={"flip-jpeg": [50], "blur-jpeg": [10]}, threats=["clean", "oblivious", "whitebox", "adaptive",
                 "worst"], attack="pgd", eps="4/255", steps=5, min_accuracy={"clean": 0.8, "*": 0.5})
def test_planted(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""
ARGS = ("--hac-model=tiny-cnn", "--hac-samples=32")
#: Every cell of the codecs whose evaluation the soundness checks must refuse.
FLAGGED = {f"{d}-r1-{t}" for d in ("flip-jpeg-q50", "blur-jpeg-q10")
           for t in ("whitebox-pgd-s5", "adaptive-pgd-s5", "worst")}
CELLS = 10


@dataclass(frozen=True)
class PlantedRuns:
    """Each run's folder, exit status and output."""

    folders: dict[str, Path]
    status: dict[str, int]
    output: dict[str, str]


def _project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "conftest.py").write_text(PLANTED_CONFTEST)
    (folder / "test_planted.py").write_text(PLANTED_CELLS)
    (folder / "pytest.ini").write_text("[pytest]\n")
    return folder


@pytest.fixture(scope="session")
def planted_runs(tmp_path_factory, fresh_pytest) -> PlantedRuns:
    root = tmp_path_factory.mktemp("planted")
    cache = f"--hac-cache={root / 'cache'}"
    runs = {"serial": ("--junitxml=junit.xml",), "xdist": ("-n", "2", "--dist", "loadgroup", "--junitxml=junit.xml"),
            "shards": ("--hac-shard=1/2",), "shard2": ("--hac-shard=2/2",),
            "warn": ("--hac-shard=1/2", "--hac-soundness=warn"),
            "update": ("--hac-update-thresholds", "--hac-thresholds=thresholds.toml")}
    folders, status, output = {}, {}, {}
    for name, args in runs.items():  # one after the other: the first fills the cache the others read
        folder = root / "shards" if name == "shard2" else _project(root / name)
        proc = fresh_pytest(folder, *ARGS, cache, *args)
        output[name] = proc.communicate(timeout=900)[0]
        folders[name], status[name] = folder, proc.returncode
    shutil.copy(folders["shards"] / "reports" / "tiny-cnn.shard-2-of-2.json", folders["warn"] / "reports")
    return PlantedRuns(folders, status, output)


@pytest.fixture(scope="module")
def model():
    """tiny-cnn (the soundness checks are the subject, not the model)."""
    from pytest_hac.models import get_model

    return get_model("tiny-cnn")


@pytest.fixture(scope="module")
def digits():
    """The first 32 held-out digits at 32 px: the probes' own subset."""
    from pytest_hac.data import load_dataset

    return load_dataset("digits", resize=32, crop=32, samples=32)


@pytest.fixture
def planted_codecs():
    """The planted codecs registered for one test, gone after it."""
    from pytest_hac import registry

    from .planted import register

    restore = registry.snapshot()
    register(registry)
    yield
    restore()
