"""The HTML page's gallery takes the engine's own tensors: no extra work, a few bounded thumbnails, JSON out."""
import base64
import io
import json

import pytest
from PIL import Image

from pytest_hac.attacks import make_spec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.engine.engine import Engine
from pytest_hac.core.engine.gallery import THUMBNAIL, choose, combine

PGD = make_spec("pgd", "8/255", steps=2, restarts=2)


def case(codec, quality, threat):
    q = "" if quality is None else f"-q{quality}"
    return Case(codec, quality, 1, threat, None if threat == "clean" else PGD, id=f"{codec}{q}-r1-{threat}")


CASES = [case("jpeg", 50, "clean"), case("jpeg", 50, "oblivious"), case("jpeg", 50, "whitebox"),
         case("identity", None, "clean"), case("identity", None, "oblivious")]


@pytest.fixture(scope="module")
def tiny():
    from pytest_hac.data import load_dataset
    from pytest_hac.models import get_model

    model = get_model("tiny-cnn")
    return model, load_dataset("digits", resize=model.resize_size, crop=model.input_size, samples=10)


def run(tiny, gallery: int) -> Engine:
    engine = Engine(*tiny, batch_size=4, gallery=gallery, seed=3)
    engine.plan(CASES)
    for c in CASES:
        engine.evaluate(c)
    return engine


def _size(b64: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(b64))).size


def test_the_gallery_costs_no_model_codec_or_attack_pass(tiny):
    without, with_ = run(tiny, 0), run(tiny, 3)
    assert without.gallery is None
    assert with_.counters == without.counters  # nothing recomputed: the same batches, attacks and codec passes


def test_gallery_shows_the_chosen_images_of_every_cell(tiny):
    engine = run(tiny, 3)
    _, data = tiny
    assert engine.gallery.indices == choose(len(data), 3, 3) and len(engine.gallery.indices) == 3
    assert choose(10, 3, 3) == choose(10, 3, 3) != choose(10, 3, 4)
    out = json.loads(json.dumps(engine.gallery.to_dict()))  # plain JSON, as it travels from xdist workers
    assert set(out["cells"]) == {c.id for c in CASES}
    assert sorted(int(i) for i in out["images"]) == list(engine.gallery.indices)
    for i, image in out["images"].items():
        assert image["id"] == data.ids[int(i)] and image["label_name"] == str(int(data.labels[int(i)]))
        assert max(_size(image["clean"])) <= THUMBNAIL
    decoded = out["cells"]["jpeg-q50-r1-clean"]
    assert all(s["bpp"] > 0 and s["psnr"] > 20 and s["decoded"] and "source" not in s for s in decoded.values())
    bare = out["cells"]["identity-r1-clean"]
    assert all(s["decoded"] is None and s["bpp"] is None for s in bare.values())
    for cid in ("jpeg-q50-r1-oblivious", "jpeg-q50-r1-whitebox", "identity-r1-oblivious"):
        for i, s in out["cells"][cid].items():
            assert s["source"] and s["perturbation"] and 0 < s["linf"] <= 8 + 1e-3 and s["magnified"] > 1
            assert s["correct"] == (s["predicted"] == out["images"][i]["label"])
            assert s["predicted_name"] == str(s["predicted"])
    # The prediction shown agrees with the cell's result: wrong on an image the worst restart got wrong.
    result = engine.evaluate(CASES[1])
    shots = engine.gallery.shots(CASES[1].id)
    assert {i: s["correct"] for i, s in shots.items()} == {i: result.correct[i] for i in engine.gallery.indices}


def test_only_the_chosen_cells_are_exported_and_parts_merge():
    into = {}
    combine(into, {"images": {"1": {"id": "a"}}, "cells": {"x": {"1": {}}}})
    combine(into, {"images": {"1": {"id": "a"}}, "cells": {"y": {"1": {}}}})
    assert into == {"images": {"1": {"id": "a"}}, "cells": {"x": {"1": {}}, "y": {"1": {}}}}
