"""(b) images per second: each codec's real round trip, and one PGD step per model.

Codecs and models whose weights are not available here are skipped, not failed. Each benchmark loads what
it measures itself; the goal is a measured, positive rate (there is no speed floor: the numbers go to the
README's "Speed" table).
"""
import math
import statistics
import time

import pytest
import torch

from pytest_hac.attacks import build_attack, make_spec
from pytest_hac.codecs import get_codec
from pytest_hac.errors import HacError
from pytest_hac.models import get_model, model_info
from pytest_hac.registry import CODECS, MODELS

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


#: Qualities at about JPEG q50's rate (1.15 bpp on the embedded photos), so a query's cost compares at one rate.
NEAR_JPEG_Q50 = {"webp": 65, "avif": 62, "jpeg2000": 29, "jpegxl": 72}


def _middle_quality(name):
    if name in NEAR_JPEG_Q50:
        return NEAR_JPEG_Q50[name]
    qualities = CODECS.info(name).qualities
    if qualities is None:
        return None
    return 50 if 50 in qualities else list(qualities)[len(qualities) // 2]


def _rate(benchmark, n, fn, rounds=3):
    """Time ``fn`` (on ``n`` images) as a benchmark; record and check its images per second."""
    fn()  # warm-up: lazy imports, allocator, cuDNN autotuning
    seconds = []

    def timed():
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)

    # timed here as well: pytest-benchmark keeps no stats when it is disabled (under xdist, --benchmark-disable)
    benchmark.pedantic(timed, rounds=rounds, iterations=1)
    per_call = statistics.median(seconds)
    rate = n / per_call
    benchmark.extra_info.update({"images": n, "device": DEVICE, "images_per_second": round(rate, 2)})
    assert n > 0 and math.isfinite(rate) and rate > 0, f"no measurable rate: {n} images in {per_call} s per call"


@pytest.mark.parametrize("name", CODECS.names())
def test_codec_roundtrip(benchmark, name, embedded_photos):
    quality = _middle_quality(name)
    try:
        codec = get_codec(name, quality, device=DEVICE)
    except (HacError, ImportError, OSError) as exc:
        pytest.skip(f"{name}: {exc}")
    x = embedded_photos.pixels().to(DEVICE)

    def roundtrip():
        with torch.inference_mode():
            codec.roundtrip(x)
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    benchmark.extra_info["quality"] = quality
    _rate(benchmark, len(x), roundtrip)


@pytest.mark.parametrize("name", MODELS.names())
def test_one_pgd_step(benchmark, name, bench_samples):
    from pytest_hac.data import load_dataset
    from pytest_hac.run import default_data
    from pytest_hac.settings import Settings

    try:
        model = get_model(name, device=DEVICE)
    except (HacError, ImportError, OSError) as exc:
        pytest.skip(f"{name}: {exc}")
    info = model_info(name)
    spec = default_data(Settings(model=name))
    data = load_dataset(spec, resize=info.resize_size, crop=info.input_size,
                        samples=min(bench_samples, 500 if spec == "digits" else 20))
    x, y = data.pixels().to(DEVICE), data.labels.to(DEVICE)
    attack = build_attack(model, make_spec("pgd", "4/255", steps=1))

    def step():
        attack(x, y)
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    _rate(benchmark, len(x), step)
