"""The engine computes every distinct thing once: within a session, across sessions, under OOM back-off.

And what it computes does not depend on the order of the cells, the disk cache or the batch size it backs off to."""
import copy
import warnings

import pytest
import torch

from pytest_hac.attacks import make_spec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.engine.engine import Counters, Engine
from pytest_hac.io.cache import DiskCache, Store

PGD = make_spec("pgd", "4/255", steps=2)
BIM = make_spec("ifgsm", "4/255", steps=2)  # no random start: results cannot depend on batch boundaries


def case(codec, quality, rounds, threat, attack=PGD):
    attack = None if threat == "clean" else attack
    q = "" if quality is None else f"-q{quality}"
    return Case(codec, quality, rounds, threat, attack, id=f"{codec}{q}-r{rounds}-{threat}")


MATRIX = [case("jpeg", q, r, t) for q in (25, 75) for r in (1, 2) for t in ("clean", "oblivious", "whitebox")] + [
    case("identity", None, 1, "clean"), case("identity", None, 1, "oblivious")]


DIGITS = 4  # tiny-cnn on 4 digits (tests/unit/conftest.py): accounting, not the model, is the subject


def engine(model, data, cache=None, **kw):
    kw.setdefault("batch_size", 4)
    return Engine(model, data, store=Store(disk=None if cache is None else DiskCache(cache)), **kw)


def outcome(result):
    return result.correct, result.bpp, result.psnr


@pytest.fixture(scope="module")
def reference(model, data):
    """The matrix evaluated once, in order, memory only."""
    e = engine(model, data)
    return {c.id: outcome(e.evaluate(c)) for c in MATRIX}


def test_oblivious_attack_runs_once_for_every_defense(model, data):
    e = engine(model, data)
    for c in MATRIX:
        if c.threat == "oblivious":
            e.evaluate(c)
    assert e.counters.attack_batches == 1  # 4 images, batch 4: one attack shared by 5 defenses


def test_round_k_costs_one_codec_pass_after_round_k_minus_1(model, data):
    e = engine(model, data)
    e.evaluate(case("jpeg", 50, 2, "clean"))
    assert e.counters.codec_batches == 2
    e.evaluate(case("jpeg", 50, 3, "clean"))
    assert e.counters.codec_batches == 3
    e.evaluate(case("jpeg", 50, 1, "clean"))
    assert e.counters.codec_batches == 3


def test_the_same_images_are_never_classified_twice(model, data):
    e = engine(model, data)
    for c in [case("identity", None, 1, "clean"), case("jpeg", 50, 1, "clean")] * 2:
        e.evaluate(c)
    assert e.counters.predict_batches == 2


def test_results_do_not_depend_on_order_or_cache(model, data, reference, tmp_path):
    backwards = engine(model, data, cache=tmp_path)
    got = {c.id: outcome(backwards.evaluate(c)) for c in reversed(MATRIX)}
    assert got == reference


def test_a_second_session_with_the_cache_recomputes_nothing(model, data, reference, tmp_path):
    first = engine(model, data, cache=tmp_path)
    for c in MATRIX:
        first.evaluate(c)
    second = engine(model, data, cache=tmp_path)
    got = {c.id: outcome(second.evaluate(c)) for c in MATRIX}
    assert got == reference
    assert second.counters == Counters()
    assert second.store.disk.hits > 0 and second.store.disk.writes == 0


def test_a_changed_model_or_version_never_reuses_entries(model, data, tmp_path):
    cells = [case("jpeg", 50, 1, "clean"), case("jpeg", 50, 1, "oblivious")]
    for c in cells:
        engine(model, data, cache=tmp_path).evaluate(c)

    changed = copy.deepcopy(model)
    with torch.no_grad():
        next(changed.parameters()).view(-1)[0] += 1e-3
    e = engine(changed, data, cache=tmp_path)
    for c in cells:
        e.evaluate(c)
    assert e.counters.attack_batches == 1 and e.counters.predict_batches == 2
    # JPEG of the clean photos does not depend on the model: only the new adversarial batch is coded
    assert e.counters.codec_batches == 1

    versions = {**DiskCache(tmp_path).versions, "torch": "0.0"}
    newer = Engine(model, data, batch_size=4, store=Store(disk=DiskCache(tmp_path, versions=versions)))
    for c in cells:
        newer.evaluate(c)
    assert newer.counters.attack_batches == 1 and newer.counters.codec_batches == 2


def test_a_corrupt_entry_is_recomputed(model, data, reference, tmp_path):
    c = MATRIX[1]  # jpeg-q25-r1-oblivious
    engine(model, data, cache=tmp_path).evaluate(c)
    entries = sorted((tmp_path / "hac-v1").glob("*/*.pt"))
    assert entries
    for i, path in enumerate(entries):  # one truncated, the rest garbage
        path.write_bytes(path.read_bytes()[:100] if i == 0 else b"not a tensor")
    e = engine(model, data, cache=tmp_path)
    assert outcome(e.evaluate(c)) == reference[c.id]
    assert e.counters.attack_batches == 1 and e.store.disk.corrupt >= len(entries) - 1
    again = engine(model, data, cache=tmp_path)  # the recomputed entries replaced the broken ones
    again.evaluate(c)
    assert again.counters == Counters()


def test_store_evicts_least_recently_used_and_reloads_from_disk(tmp_path):
    store = Store(max_bytes=2 * 400, disk=DiskCache(tmp_path))
    for i in range(3):
        store.put(("k", i), (torch.full((100,), float(i)),), address=store.disk.address(i))
    assert ("k", 0) not in store and store.nbytes <= store.max_bytes
    value = store.get(("k", 0), address=store.disk.address(0))
    assert value is not None and float(value[0][0]) == 0.0 and store.disk_hits == 1
    assert store.get(("k", 9)) is None  # no address: memory only


def _oom_above(limit, fn):
    """``fn`` that raises CUDA out-of-memory for batches larger than ``limit`` (as a GPU would)."""

    def wrapped(x, *args, **kw):
        if x.shape[0] > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return fn(x, *args, **kw)

    return wrapped


def test_out_of_memory_halves_the_batch_and_carries_on(model, data, monkeypatch):
    cells = [case("jpeg", 50, 2, "clean"), case("jpeg", 50, 1, "oblivious", BIM), case("identity", None, 1, "clean")]
    expected = {c.id: outcome(engine(model, data).evaluate(c)) for c in cells}

    small = engine(model, data)
    monkeypatch.setattr(model, "forward", _oom_above(2, model.forward))
    codec = small.codec("jpeg", 50)
    monkeypatch.setattr(codec, "roundtrip", _oom_above(1, codec.roundtrip))
    with pytest.warns(UserWarning, match="out of memory.*halved"):
        got = {c.id: outcome(small.evaluate(c)) for c in cells}
    assert got == expected
    assert small.batch_sizes == {"attack": 2, "codec": 1, "predict": 2}
    assert small.counters.oom_backoffs == 4  # attack 4->2, predict 4->2, codec 4->2->1


def test_out_of_memory_at_batch_size_one_is_an_error(model, data, monkeypatch):
    from pytest_hac.errors import HacError

    e = engine(model, data)
    monkeypatch.setattr(model, "forward", _oom_above(0, model.forward))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(HacError, match="even at batch size 1"):
            e.evaluate(case("identity", None, 1, "clean"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_jpeg_on_cuda_matches_cpu_within_jpeg_tolerance(model, data, reference):
    from pytest_hac.codecs import get_codec

    cpu, _ = get_codec("jpeg", 50).roundtrip(data.pixels())
    gpu, bpp = get_codec("jpeg", 50, device="cuda").roundtrip(data.pixels().cuda())
    # libjpeg and nvJPEG use different DCT and upsampling implementations: a few levels of 255 apart
    assert (gpu.cpu() - cpu).abs().mean() < 2 / 255 and bpp.shape == (len(data),)
    e = engine(copy.deepcopy(model), data, device="cuda", batch_size="auto")  # the CPU tests keep theirs
    clean = e.evaluate(case("jpeg", 25, 1, "clean"))
    assert abs(clean.accuracy - sum(reference["jpeg-q25-r1-clean"][0]) / len(data)) <= 0.25
