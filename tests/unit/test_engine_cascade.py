"""The cascade: an attacked cell's later gradient paths and restarts attack only the images every earlier set left
correct, and every cell keeps, image by image, exactly what it kept when every set attacked every image.

The reference is frozen: ``fixtures/cascade_main.json`` was computed before the cascade (every set on every image,
:mod:`.cascade_cells`), so a change to the full sets themselves fails here too."""
import json
import math

import pytest
import torch
from cascade_cells import FIXTURE, case, evaluate

from pytest_hac.attacks import make_spec
from pytest_hac.core.engine.engine import Engine
from pytest_hac.core.engine.outcome import worst_of

REFERENCE = json.loads(FIXTURE.read_text())
DIGITS = 32  # the conftest's ``data`` for the counting tests


def kept(engine, c):
    return worst_of(engine.cascade(c, engine.source_keys(c)))


def same(a, b):
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


@pytest.mark.parametrize("mode", [pytest.param(m, marks=pytest.mark.slow) if m != "default" else m
                                  for m in sorted(REFERENCE)])
def test_every_cell_keeps_per_image_what_full_sets_kept(mode):
    now = evaluate(mode, kept)
    for cell, before in REFERENCE[mode].items():
        after = now[cell]
        assert after["correct"] == before["correct"], cell
        assert same(after["bpp"], before["bpp"]), cell
        assert same(after["psnr"], before["psnr"]), cell
        assert after["diagnostics"] == before["diagnostics"], cell


def test_restarts_attack_only_the_survivors_of_earlier_restarts(model, data):
    """restarts=4 on a white-box cell: n images for the first restart, then each restart's survivors."""
    c = case("jpeg", 90, 1, "whitebox", make_spec("pgd", "6/255", steps=2, restarts=4))
    e = Engine(model, data, batch_size=8)
    e.evaluate(c)
    outcomes = e.cascade(c, e.source_keys(c))
    alive, expected = None, 0
    for o in outcomes:
        expected += len(data.labels) if alive is None else int(alive.sum())
        alive = o.correct if alive is None else alive & o.correct
    assert 0 < int(alive.sum()) < len(data.labels)  # the restarts had survivors to attack and broke some
    assert e.counters.attack_images == expected < 4 * len(data.labels)


def test_an_attack_that_depends_on_its_batch_attacks_every_image(model, data):
    """cw stops on the batch's summed loss: its later paths attack every image."""
    c = case("jpeg", 60, 1, "adaptive", make_spec("cw", None, steps=2))
    e = Engine(model, data, batch_size=8)
    e.evaluate(c)
    assert e.counters.attack_images == len(data.labels) * len(e.source_keys(c))


def test_large_eps_probes_stop_attacking_broken_images(model, data):
    """The undefended and through-the-defense large-eps probes attack an image only until the pipeline they check
    gets it wrong: fewer gradient passes than every image for every step, and the same answer per image as the
    probe that runs every step on every image (tiny-cnn on digits at 64/255)."""
    from pytest_hac.core.cells.defense import Defense
    from pytest_hac.core.engine.probes import PROBE_EPS, probe_spec

    e = Engine(model, data, batch_size=8)
    spec = probe_spec(e, make_spec("pgd", "8/255", steps=10), PROBE_EPS)
    jpeg = Defense("jpeg", 30, 1)
    for path, defense in (("bare", Defense("identity", None, 1)), ("approximate", jpeg), ("bpda-identity", jpeg)):
        full, stopped = (e.adversarial_key(path, defense, spec, n=16, until_broken=u) for u in (False, True))
        assert full != stopped and full.run == stopped.run  # its own set, the same random starts
        images = []
        hook = model.register_forward_hook(lambda m, i, o: images.append(0 if torch.is_inference_mode_enabled()
                                                                          else len(i[0])))
        try:
            answered = e.outcome(stopped, defense).correct
            stopped_images, images[:] = sum(images), []
            assert not e.outcome(full, defense).correct.any(), path
            full_images = sum(images)
        finally:
            hook.remove()
        assert not answered.any(), path
        assert full_images == 16 * spec.steps and stopped_images < full_images / 2, path


@pytest.mark.parametrize("attack", [make_spec("fgsm", "4/255"), make_spec("ifgsm", "4/255", steps=2)])
def test_zero_gradient_probe_reuses_the_attacks_gradient_at_the_clean_images(model, data, attack):
    """FGSM and BIM take their first gradient at the clean images: the zero-gradient probe reads it instead of
    taking it again, with the answer the probe computes itself."""
    c = case("jpeg", 60, 1, "adaptive", attack)
    e = Engine(model, data, batch_size=8)
    e.evaluate(c)
    from pytest_hac.core.engine.probes import PROBE_IMAGES

    # the attack's passes and the large-eps probe's: no gradient pass of the zero-gradient probe
    assert e.batches.passes["attack:bpda"] == (len(data.labels) + min(len(data.labels), PROBE_IMAGES)) * attack.steps
    fresh = Engine(model, data, batch_size=8)
    for path in ("approximate", "bpda", "bpda-identity"):
        assert e.zero_gradients(path, c.defense).equal(fresh.zero_gradients(path, c.defense)), path
    assert fresh.batches.passes["attack:bpda"] == len(data.labels)  # what the probe costs when it runs


def test_zero_gradient_probe_stops_after_144_images_that_show_none(model):
    """One gradient pass per image and path on the first 144 images where none of them has a zero gradient,
    however many the cell evaluates (the first stage of :data:`~pytest_hac.core.engine.probes.ZERO_GRADIENT_FIRST`)."""
    from pytest_hac.core.engine.probes import ZERO_GRADIENT_FIRST
    from pytest_hac.data import load_dataset

    data = load_dataset("digits", resize=32, crop=32, samples=300)
    e = Engine(model, data, batch_size=64)
    r = e.evaluate(case("jpeg", 60, 1, "whitebox", make_spec("pgd", "4/255", steps=1)))
    assert r.diagnostics.zero_gradient.to_dict() == {"images": 0, "of": ZERO_GRADIENT_FIRST}
    large_eps = r.diagnostics.large_eps.n * 1  # one step, stopped early at most
    assert e.batches.passes["attack:approximate"] == 300 + ZERO_GRADIENT_FIRST + large_eps


def test_zero_gradient_probe_goes_on_to_384_images_where_the_first_144_show_one(model, registries):
    """A zero gradient among the first 144 images: the share is judged on 384, and the first 144 are not taken
    again. Here the stand-in hides the brightest images from the attacker (planted masking on a few images)."""
    from pytest_hac.codecs.base import Identity
    from pytest_hac.core.engine.probes import ZERO_GRADIENT_FIRST, ZERO_GRADIENT_IMAGES
    from pytest_hac.data import load_dataset
    from pytest_hac.registry import register_codec

    data = load_dataset("digits", resize=32, crop=32, samples=400)
    brightness = data.pixels().mean((1, 2, 3))
    bright = brightness[:ZERO_GRADIENT_FIRST].topk(2).values[-1]  # two masked images in the first stage

    class Hiding(Identity):
        name = "hiding"

        def approximate(self, x):
            hidden = (x.mean((1, 2, 3)) >= bright)[:, None, None, None]
            return torch.where(hidden, x.detach(), x)

    register_codec("hiding", lambda q, **_: Hiding(), qualities=None)
    e = Engine(model, data, batch_size=64)
    r = e.evaluate(case("hiding", None, 1, "whitebox", make_spec("pgd", "4/255", steps=1)))
    masked = int((brightness[:ZERO_GRADIENT_IMAGES] >= bright).sum())
    assert r.diagnostics.zero_gradient.to_dict() == {"images": masked, "of": ZERO_GRADIENT_IMAGES}
    large_eps = r.diagnostics.large_eps.n * 1
    assert e.batches.passes["attack:approximate"] == 400 + ZERO_GRADIENT_IMAGES + large_eps
