"""(d) attacks through a learned codec cost about what the network costs (issue 19).

On tiny-hific q2 (32 digits, tiny-cnn, 8/255, one run each, a fresh engine per cell so nothing is shared):
each of the adaptive cell's gradient paths costs at most 1.15x the white-box cell, and the query cell
(Square, 1,000 queries) at most 10x the same cell through JPEG q50. Also the images per second of
``roundtrip`` and of the fast path of every embedded learned codec. :func:`cell_seconds` uses only the
engine's public API, so the same numbers can be taken on an older checkout (``PYTHONPATH=<checkout>``)
for a before/after comparison.
"""
import time

import pytest
import torch

from pytest_hac.attacks import make_spec
from pytest_hac.codecs import get_codec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.engine.engine import Engine

SAMPLES = 32
EPS = "8/255"


def cell_seconds(codec: str, quality: int, threat: str, attack: str, **params) -> tuple[float, list[bool]]:
    """Seconds of one cell in a fresh engine (tiny-cnn on 32 digits), and its per-image outcome."""
    from pytest_hac.data.builtin import digits
    from pytest_hac.models import get_model

    model = get_model("tiny-cnn")
    data = digits(samples=SAMPLES)
    engine = Engine(model, data)
    engine.codec(codec, quality)  # built (and verified) outside the timed cell
    case = Case(codec, quality, 1, threat, make_spec(attack, EPS, **params), id=f"{codec}-{threat}-{attack}")
    start = time.perf_counter()
    result = engine.evaluate(case)
    return time.perf_counter() - start, list(result.correct)


def _once(benchmark, fn):
    out = {}

    def timed():
        out["value"] = fn()

    benchmark.pedantic(timed, rounds=1, iterations=1)
    return out["value"]


def test_each_adaptive_path_costs_at_most_115_percent_of_whitebox(benchmark):
    """The adaptive cell runs one attack per gradient path (issue 20: BPDA with the approximation, with the
    identity, and the white-box attack itself; at one round, three): each path, its BPDA forward through
    the fast path included, must cost about what the white-box attack costs."""
    from pytest_hac.attacks import Threat
    from pytest_hac.core.cells.defense import gradient_paths

    paths = len(gradient_paths(Threat.ADAPTIVE, "tiny-hific", 1))
    whitebox, _ = cell_seconds("tiny-hific", 2, "whitebox", "pgd")
    adaptive, _ = _once(benchmark, lambda: cell_seconds("tiny-hific", 2, "adaptive", "pgd"))
    per_path = adaptive / paths
    benchmark.extra_info.update({"whitebox_s": round(whitebox, 2), "adaptive_s": round(adaptive, 2), "paths": paths,
                                 "ratio_per_path": round(per_path / whitebox, 3)})
    assert per_path <= 1.15 * whitebox, f"adaptive {adaptive:.1f} s over {paths} paths vs white-box {whitebox:.1f} s"


def test_query_cell_through_tiny_hific_costs_at_most_10x_jpeg(benchmark):
    jpeg, _ = cell_seconds("jpeg", 50, "query", "square", queries=1000)
    hific, _ = _once(benchmark, lambda: cell_seconds("tiny-hific", 2, "query", "square", queries=1000))
    benchmark.extra_info.update({"jpeg_s": round(jpeg, 2), "tiny_hific_s": round(hific, 2),
                                 "ratio": round(hific / jpeg, 2)})
    assert hific <= 10 * jpeg, f"query cell {hific:.1f} s through tiny-hific vs {jpeg:.1f} s through JPEG q50"


@pytest.mark.parametrize("path", ["roundtrip", "fast"])
@pytest.mark.parametrize("name", [f"{k}-q{q}" for k in ("tiny-mse", "tiny-hific") for q in (1, 2, 3)])
def test_embedded_codec_rates(benchmark, name, path, embedded_photos):
    kind, quality = name.rsplit("-q", 1)
    codec = get_codec(kind, int(quality))
    assert codec.fast_path
    x = embedded_photos.pixels()
    fn = (lambda: codec.roundtrip(x)) if path == "roundtrip" else (lambda: codec.attack_decode(x))
    fn()
    start = time.perf_counter()
    benchmark.pedantic(fn, rounds=3, iterations=1)
    rate = 3 * len(x) / (time.perf_counter() - start)
    benchmark.extra_info.update({"images": len(x), "images_per_second": round(rate, 2)})
    assert rate > 0


def test_attack_decode_is_not_slower_than_roundtrip():
    codec = get_codec("tiny-hific", 2)
    x = torch.rand(16, 3, 64, 64)
    timings = {}
    for name, fn in (("roundtrip", codec.roundtrip), ("fast", codec.attack_decode)):
        fn(x)
        start = time.perf_counter()
        fn(x)
        timings[name] = time.perf_counter() - start
    assert timings["fast"] < timings["roundtrip"], timings
