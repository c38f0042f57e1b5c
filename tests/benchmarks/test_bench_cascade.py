"""The cascade's cost: an adaptive JPEG matrix, an adaptive learned-codec cell against its white-box twin, and the
soundness probes' share, on tiny-cnn and 32-px digits (``HAC_BENCH_DIGITS``, default 256); and the probes' share
in the run that issue 29 found them costlier than the attack in: EfficientNet-Lite0 at 224 px, FGSM, 12 JPEG cells
(``HAC_BENCH_PHOTOS``, default 40).

Each benchmark records what it measured in ``extra_info`` (attacked images per set, seconds per cell, the probes'
seconds): the numbers the cascade changes. Run on the commit before the cascade for the "before"::

    HAC_BENCH=1 pytest tests/benchmarks/test_bench_cascade.py -o addopts= --benchmark-json=cascade.json

(``-o addopts=``: the ini's ``--dist loadgroup`` makes pytest-benchmark disable itself and save nothing.)
"""
import os
import time

import pytest
import torch

from pytest_hac.attacks import make_spec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.engine.engine import Engine

PGD = make_spec("pgd", "8/255", steps=10)


def cell(codec, quality, threat, attack=PGD):
    attack = None if threat == "clean" else attack
    return Case(codec, quality, 1, threat, attack, id=f"{codec}-q{quality}-{threat}")


#: identity and JPEG q30/60/90 x clean/oblivious/adaptive (the identity's adaptive cell is its oblivious one).
QUALITIES = (30, 60, 90)
MATRIX = [cell("identity", None, t) for t in ("clean", "oblivious")] + [
    cell("jpeg", q, t) for q in QUALITIES for t in ("clean", "oblivious", "adaptive")]


def digit_photos(n: int):
    """``n`` digits at 32 px: the 500 held out from tiny-cnn's training first, then training digits (the cascade's
    cost is the subject, not the accuracy)."""
    from pytest_hac.data import load_dataset
    from pytest_hac.data.builtin import digits_split
    from pytest_hac.data.dataset import Dataset

    held_out = load_dataset("digits", resize=32, crop=32)
    if n <= len(held_out.labels):
        return load_dataset("digits", resize=32, crop=32, samples=n)
    images, labels = digits_split("train")
    extra = n - len(held_out.labels)
    more = images[:extra].mul(255).round().to(torch.uint8)
    return Dataset("digits", torch.cat([held_out.images, more]), torch.cat([held_out.labels, labels[:extra]]),
                   held_out.ids + tuple(f"digits-train-{i:04d}" for i in range(extra)), "digits",
                   class_labels=tuple(range(10)), labels_rule="scikit-learn's digit labels")


@pytest.fixture(scope="module")
def digits():
    from pytest_hac.models import get_model

    return get_model("tiny-cnn"), digit_photos(int(os.environ.get("HAC_BENCH_DIGITS", "256")))


def _run(model, data, cases):
    engine = Engine(model, data, batch_size="auto")
    engine.plan(cases)  # as the plugin does: a set a later cell needs on every image is computed on every image
    seconds, accuracy = {}, {}
    for c in cases:
        began = time.perf_counter()
        accuracy[c.id] = engine.evaluate(c).accuracy
        seconds[c.id] = round(time.perf_counter() - began, 2)
    return engine, seconds, accuracy


def test_adaptive_jpeg_matrix(benchmark, digits):
    model, data = digits
    engine, seconds, accuracy = benchmark.pedantic(_run, args=(model, data, MATRIX), rounds=1, iterations=1)
    benchmark.extra_info.update(
        images=len(data.labels), attack_images=engine.counters.attack_images, cell_seconds=seconds,
        accuracy=accuracy, probe_seconds=round(engine.seconds.get("probe", 0.0), 2),
        total_seconds=round(sum(seconds.values()), 2), pass_cost=pass_cost(engine))


def pass_cost(engine):
    """Per kind of pass (an attack's gradient path, codec round trips, predictions): image passes, seconds and
    microseconds per image pass, the numbers the ratio to the peer decomposes into."""
    done, spent = engine.batches.passes, engine.batches.pass_seconds
    return {kind: {"image_passes": round(n), "seconds": round(spent.get(kind, 0.0), 2),
                   "us_per_image_pass": round(1e6 * spent.get(kind, 0.0) / n)} for kind, n in done.items() if n}


def test_learned_codec_adaptive_against_whitebox(benchmark, digits):
    """tiny-hific q2: the adaptive cell's ``approximate`` path is the white-box attack (computed once)."""
    model, data = digits
    cases = [cell("tiny-hific", 2, "whitebox"), cell("tiny-hific", 2, "adaptive")]
    engine, seconds, accuracy = benchmark.pedantic(_run, args=(model, data, cases), rounds=1, iterations=1)
    white, adaptive = seconds[cases[0].id], seconds[cases[1].id]
    benchmark.extra_info.update(images=len(data.labels), cell_seconds=seconds, accuracy=accuracy,
                                attack_images=engine.counters.attack_images,
                                adaptive_over_whitebox=round(adaptive / white, 3))


def _peer(model, data, white_box=False):
    """The same cells through ART (the peer): its PGD (random start, eps_step = eps / 4) on the bare model, its
    PGD through ``JpegCompression`` (BPDA: the identity backward, one path) per quality, accuracy through JPEG.

    ``white_box``: per quality also its PGD through kornia's differentiable JPEG (our ``approximate`` path) on every
    image, the adaptive accuracy the per-image worst of the two: the peer at two of our three paths.
    """
    from art.attacks.evasion import ProjectedGradientDescent
    from art.defences.preprocessor import JpegCompression
    from art.estimators.classification import PyTorchClassifier

    from pytest_hac.codecs import get_codec
    from pytest_hac.core.engine.targets import Defended

    x = data.pixels().numpy()
    y = data.labels.numpy()

    def classifier(net, defences=None):
        return PyTorchClassifier(net, loss=torch.nn.CrossEntropyLoss(), input_shape=x.shape[1:], nb_classes=10,
                                 clip_values=(0.0, 1.0), preprocessing_defences=defences, device_type="cpu")

    def pgd(estimator):
        return ProjectedGradientDescent(estimator, eps=PGD.eps, eps_step=PGD.eps / 4, max_iter=PGD.steps,
                                        num_random_init=1, batch_size=128, verbose=False).generate(x)

    def correct(estimator, images):
        return estimator.predict(images, batch_size=128).argmax(1) == y

    stand_ins = {q: Defended(model, get_codec("jpeg", q), 1, "approximate") for q in QUALITIES}  # our set-up, untimed
    seconds, acc = {}, {}
    began = time.perf_counter()
    bare = classifier(model)
    acc["identity-clean"] = float(correct(bare, x).mean())
    oblivious = pgd(bare)
    acc["identity-oblivious"] = float(correct(bare, oblivious).mean())
    seconds["identity"] = round(time.perf_counter() - began, 2)
    for q in QUALITIES:
        began = time.perf_counter()
        defended = classifier(model, [JpegCompression(clip_values=(0.0, 1.0), quality=q, channels_first=True,
                                                      apply_predict=True)])
        acc[f"jpeg-q{q}-clean"] = float(correct(defended, x).mean())
        acc[f"jpeg-q{q}-oblivious"] = float(correct(defended, oblivious).mean())
        robust = correct(defended, pgd(defended))
        if white_box:
            robust &= correct(defended, pgd(classifier(stand_ins[q])))
        acc[f"jpeg-q{q}-adaptive"] = float(robust.mean())
        seconds[f"jpeg-q{q}"] = round(time.perf_counter() - began, 2)
    return seconds, acc


@pytest.mark.parametrize("white_box", [False, True], ids=["one-path", "two-paths"])
def test_peer_jpeg_matrix(benchmark, digits, white_box):
    """The matrix of :func:`test_adaptive_jpeg_matrix` through ART (``pip install --no-deps
    adversarial-robustness-toolbox six``): the peer's time, for the ratio; ``two-paths`` adds the white-box path
    on every image, as a peer without a cascade would run it."""
    pytest.importorskip("art")
    model, data = digits
    seconds, accuracy = benchmark.pedantic(_peer, args=(model, data, white_box), rounds=1, iterations=1)
    total = sum(seconds.values())
    # its PGD runs: the bare model, and per quality one (two with the white-box path)
    image_steps = (1 + len(QUALITIES) * (1 + white_box)) * len(data.labels) * PGD.steps
    benchmark.extra_info.update(images=len(data.labels), cell_seconds=seconds, accuracy=accuracy,
                                total_seconds=round(total, 2), us_per_image_step=round(1e6 * total / image_steps))


def embedded_photos(n: int, model):
    """``n`` photos at the model's size: the embedded 20 repeated, each copy under its own id (so its own attack
    seeds). The cost is the subject; 1,000 distinct real photos are not available offline."""
    import dataclasses

    from pytest_hac.data import load_dataset

    base = load_dataset("embedded", resize=model.resize_size, crop=model.input_size)
    copies = -(-n // len(base.labels))
    return dataclasses.replace(
        base, images=base.images.repeat(copies, 1, 1, 1)[:n], labels=base.labels.repeat(copies)[:n],
        ids=tuple(f"{image}#{k}" for k in range(copies) for image in base.ids)[:n])


def test_probe_share_fgsm_jpeg(benchmark):
    """Identity and JPEG q10/25/50/75 x clean/oblivious/whitebox, FGSM 4/255: the zero-gradient probe reads FGSM's
    own gradient at the clean images, the large-eps probes stop once an image is broken."""
    from pytest_hac.models import get_model

    model = get_model("efficientnet-lite0")
    data = embedded_photos(int(os.environ.get("HAC_BENCH_PHOTOS", "40")), model)
    fgsm = make_spec("fgsm", "4/255")
    cases = [cell("identity", None, t, fgsm) for t in ("clean", "oblivious")] + [
        cell("jpeg", q, t, fgsm) for q in (10, 25, 50, 75) for t in ("clean", "oblivious", "whitebox")]
    engine, seconds, accuracy = benchmark.pedantic(_run, args=(model, data, cases), rounds=1, iterations=1)
    total = sum(seconds.values())
    benchmark.extra_info.update(images=len(data.labels), cell_seconds=seconds, total_seconds=round(total, 2),
                                probe_seconds=round(engine.seconds.get("probe", 0.0), 2),
                                probe_share=round(engine.seconds.get("probe", 0.0) / total, 4),
                                attack_images=engine.counters.attack_images)
