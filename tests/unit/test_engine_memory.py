"""The engine at scale: chunks of images, a memory budget, spilling instead of recomputing, per-image seeds."""
import pytest
import torch

from pytest_hac.core.cells.cases import expand
from pytest_hac.core.engine.engine import Engine
from pytest_hac.core.engine.keys import Chunk, RoundKey
from pytest_hac.io.cache import Store

#: Three batches of 8: enough for chunks, spills and batch sizes to differ.
DIGITS = 24
MATRIX = {"codecs": {"jpeg": [50, 75]}, "rounds": [1, 2], "threats": ["clean", "oblivious", "whitebox"],
          "attack": "pgd", "eps": "8/255", "steps": 2}


def run(model, data, cases, **kw):
    engine = Engine(model, data, **kw)
    engine.plan(cases)
    results = {c.id: engine.evaluate(c) for c in cases}
    return engine, results


def outcomes(results):
    return {k: (r.correct, r.bpp, r.psnr) for k, r in results.items()}


def test_a_tiny_budget_gives_the_same_numbers_in_chunks_and_runs_each_attack_once(model, data):
    cases = expand(MATRIX, {})
    roomy, expected = run(model, data, cases, batch_size=8)
    assert roomy.chunk_size == len(data)  # 24 digits fit in one chunk
    tight, got = run(model, data, cases, batch_size=8, memory_mb=0, store=Store(0))
    assert tight.chunk_size == 8 and tight.store.spills > 0  # one batch per chunk; kept chunks spill to disk
    assert outcomes(got) == outcomes(expected)
    # one oblivious attack shared by 4 defenses + one white-box attack per defense: 5 distinct attacks
    attacks = 1 + sum(1 for c in cases if c.threat == "whitebox")
    assert tight.counters.attack_images == attacks * len(data) == roomy.counters.attack_images
    tight.close()
    assert tight.store.keys() == []


def test_what_no_pending_cell_needs_is_dropped(model, data):
    cases = expand(MATRIX, {})
    engine = Engine(model, data, batch_size=8, memory_mb=0, store=Store(0))
    engine.plan(cases)
    oblivious = [c for c in cases if c.threat == "oblivious"]
    engine.evaluate(oblivious[0])
    kept = {type(k.key).__name__ for k in engine.store.keys() if isinstance(k, Chunk)}
    assert "AdvKey" in kept  # three more defenses' oblivious cells read the same adversarial set
    for case in cases:
        engine.evaluate(case)
    assert [k for k in engine.store.keys() if isinstance(k, Chunk)] == []  # the last consumer has run
    engine.close()


def test_a_store_nobody_closes_still_removes_its_scratch_folder():
    """Plain-Python users who never call close() (or a run that crashed) leave no scratch folder behind."""
    import gc

    store = Store(0)
    store.put("a", (torch.zeros(4),))
    store.put("b", (torch.zeros(4),))  # over the budget: "a" spills to scratch
    assert store.spills == 1 and store.get("a") is not None
    folder = store._scratch.root
    assert folder.exists()
    del store
    gc.collect()
    assert not folder.exists()


def test_codec_rounds_are_kept_as_8_bit_images(model, data):
    (r1, r2) = expand({"codecs": {"jpeg": [50]}, "rounds": [1, 2], "threats": ["clean"]}, {})
    engine = Engine(model, data, batch_size=8)
    engine.plan([r1, r2])
    engine.evaluate(r1)
    (kept,) = [k for k in engine.store.keys() if isinstance(k, Chunk) and isinstance(k.key, RoundKey)]
    pixels, bpp = engine.store.get(kept)
    assert pixels.dtype == torch.uint8 and bpp.dtype == torch.float64
    engine.evaluate(r2)
    assert engine.counters.codec_batches == 6  # round 1 once (3 batches), round 2 from it (3 batches)


@pytest.mark.parametrize("attack", ["pgd", "pgdl2", "apgd", "fgsm", "ifgsm"])
def test_the_same_seed_gives_the_same_numbers_at_any_batch_size(model, data, attack):
    eps = "0.5" if attack == "pgdl2" else "8/255"
    cases = expand({"codecs": {"jpeg": [50], "identity": []}, "threats": ["oblivious"], "attack": attack,
                    "eps": eps, "steps": 3 if attack != "fgsm" else None}, {})
    reference = outcomes(run(model, data, cases, batch_size=16)[1])
    for batch_size, memory_mb in [(4, 2048), (8, 0), (DIGITS, 0)]:
        assert outcomes(run(model, data, cases, batch_size=batch_size, memory_mb=memory_mb)[1]) == reference


def test_random_starts_are_drawn_per_image(model, data):
    """An image's random start depends on the seed, the attack, the restart and the image: not on its batch."""
    (case,) = expand({"codecs": {"identity": []}, "threats": ["oblivious"], "attack": "pgd", "eps": "8/255",
                      "steps": 1, "restarts": 2}, {})
    engine = Engine(model, data, batch_size=16)
    first, second = engine.adversarial(case)
    assert not torch.equal(first, second)  # restarts differ
    other = Engine(model, data, batch_size=16, seed=1).adversarial(case)[0]
    assert not torch.equal(first, other)  # so does another seed
    key = engine.source_keys(case)[0]
    assert engine.seeds.image_seeds(key, 0, 4) == engine.seeds.image_seeds(key, 0, 8)[:4]
