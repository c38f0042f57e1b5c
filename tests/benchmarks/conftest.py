"""Benchmarks run only when asked, so ``pytest tests`` (and CI) stays fast:

    HAC_BENCH=1 pytest tests/benchmarks -p no:cacheprovider --benchmark-json=reports/benchmarks.json

``HAC_BENCH_SAMPLES`` (default 8) sets how many embedded photos the matrix benchmarks use.
"""
import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    if os.environ.get("HAC_BENCH") == "1":
        return
    skip = pytest.mark.skip(reason="benchmark: run with HAC_BENCH=1 pytest tests/benchmarks")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bench_samples() -> int:
    return int(os.environ.get("HAC_BENCH_SAMPLES", "8"))


@pytest.fixture(scope="session")
def lite0():
    from pytest_hac.models import get_model

    return get_model("efficientnet-lite0")


@pytest.fixture(scope="session")
def embedded_photos(lite0, bench_samples):
    """``bench_samples`` of the embedded photos, preprocessed for EfficientNet-Lite0 (224 px)."""
    from pytest_hac.data import load_dataset

    return load_dataset("embedded", resize=lite0.resize_size, crop=lite0.input_size, samples=bench_samples)
