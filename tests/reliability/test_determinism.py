"""Determinism: the same seed, model, data and device give the same report, in this process and in another."""
import json
from pathlib import Path

TINY = "--hac-model=tiny-cnn"
ATTACKED = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [50], "identity": []}, threats=["clean", "oblivious", "whitebox", "adaptive"],
                 attack="pgd", eps="8/255", steps=2)
def test_cell(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""


def _without_timing(path: Path) -> dict:
    data = json.loads(path.read_text())
    for r in data["results"]:
        r.pop("seconds")
    return {k: data[k] for k in ("results", "ids", "n", "dataset", "model", "seed", "complete", "skipped_images")}


def test_same_seed_model_data_and_device_give_the_same_report(suite, monkeypatch):
    """Bit-identical on CPU, in this process and in a fresh one with another hash seed."""
    p = suite(ATTACKED)
    args = [TINY, "--hac-samples=12", "--hac-seed=3", "-p", "no:cacheprovider", "--hac-soundness=warn"]
    p.runpytest(*args, "--hac-report-dir=first").assert_outcomes(passed=8)
    monkeypatch.setenv("PYTHONHASHSEED", "12345")
    p.runpytest_subprocess(*args, "--hac-report-dir=second").assert_outcomes(passed=8)
    first, second = (_without_timing(p.path / d / "tiny-cnn.json") for d in ("first", "second"))
    assert first == second
    attacked = [r for r in first["results"] if r["threat"] != "clean"]
    assert attacked and all(r["attack_params"]["steps"] == 2 for r in attacked)
