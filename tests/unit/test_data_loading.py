"""Image folders: the subset is drawn from the file list, only it is decoded, to 8-bit, in parallel; labels."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from pytest_hac.data import decode, load_dataset
from pytest_hac.data.folders import scan
from pytest_hac.data.labels import map_classes, read_labels_file
from pytest_hac.errors import HacError


def photo(seed: int, size=(48, 40)) -> Image.Image:
    """A smooth gradient with a little texture: photo-like, and different per seed."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * (1 + seed % 3) + y) % 256, (y * 2 + seed * 17) % 256, (x + y * 3) % 256], -1)
    return Image.fromarray((base + rng.integers(0, 16, base.shape)).clip(0, 255).astype(np.uint8))


def folder(root, classes: dict[str, int]):
    for cls, count in classes.items():
        (root / cls).mkdir(parents=True)
        for i in range(count):
            photo(hash((cls, i)) % 1000).save(root / cls / f"{i:03d}.jpg", quality=90)
    return root


def test_only_the_drawn_subset_is_decoded(tmp_path, monkeypatch):
    root = folder(tmp_path / "data", {"0": 30, "1": 30})
    decoded = []
    real = decode._try
    monkeypatch.setattr(decode, "_try", lambda path, *a: decoded.append(path.name) or real(path, *a))
    data = load_dataset(str(root), resize=32, crop=32, samples=5, seed=1)
    assert len(data) == 5 and len(decoded) == 5  # 5 files opened of 60 listed
    assert data.images.dtype == torch.uint8 and data.images.shape == (5, 3, 32, 32)
    again = load_dataset(str(root), resize=32, crop=32, samples=5, seed=1)
    assert again.ids == data.ids and torch.equal(again.images, data.images)  # seeded, reproducible
    assert load_dataset(str(root), resize=32, crop=32, samples=5, seed=2).ids != data.ids


def test_the_subset_is_the_one_the_whole_decoded_folder_would_give(tmp_path):
    """Drawn from the file list with the same seeded permutation as before any image is opened."""
    root = folder(tmp_path / "data", {"a": 7, "b": 9})
    whole = load_dataset(str(root), resize=32, crop=32)
    part = load_dataset(str(root), resize=32, crop=32, samples=6, seed=3)
    index = torch.randperm(len(whole), generator=torch.Generator().manual_seed(3))[:6].sort().values
    assert part.ids == tuple(whole.ids[i] for i in index)
    assert torch.equal(part.images, whole.images[index]) and torch.equal(part.labels, whole.labels[index])


def test_an_unreadable_file_in_the_subset_is_replaced_by_the_next_in_order(tmp_path):
    root = folder(tmp_path / "data", {"0": 6, "1": 6})
    listing = scan(root)
    order = torch.randperm(len(listing.files), generator=torch.Generator().manual_seed(0)).tolist()
    victim = listing.rel(order[0])
    (root / victim).write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        data = load_dataset(str(root), resize=32, crop=32, samples=4, seed=0)
    assert len(data) == 4 and victim not in data.ids and data.skipped == (victim,)
    assert set(data.ids) == {listing.rel(i) for i in order[1:5]}


def test_parallel_decoding_gives_the_same_pixels(tmp_path):
    root = folder(tmp_path / "data", {"0": 8, "1": 8})
    one = load_dataset(str(root), resize=40, crop=32, workers=1)
    two = load_dataset(str(root), resize=40, crop=32, workers=2)
    assert one.ids == two.ids and torch.equal(one.images, two.images)


def test_pixels_are_the_8_bit_images_as_floats(tmp_path):
    data = load_dataset("digits", resize=32, crop=32, samples=4)
    assert data.images.dtype == torch.uint8
    x = data.pixels(1, 3)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 32, 32)
    assert torch.equal(x, data.images[1:3].float() / 255)


def test_upscaled_photos_are_counted(tmp_path):
    root = folder(tmp_path / "data", {"0": 3})  # 48x40 photos
    assert load_dataset(str(root), resize=256, crop=224).upscaled == 3  # 40 px enlarged 6.4x
    assert load_dataset(str(root), resize=40, crop=32).upscaled == 0


# --- labels ---------------------------------------------------------------------------------------


def test_folders_map_to_labels_by_their_names():
    wnids = map_classes(["n01440764", "n02102040"])
    assert wnids.space == "imagenet" and wnids.labels == {"n01440764": 0, "n02102040": 217}
    digits = map_classes(["0", "3"])
    assert digits.space == "index" and digits.labels == {"0": 0, "3": 3}
    words = map_classes(["cat", "airplane", "dog"])
    assert words.space == "folder-order" and words.labels == {"airplane": 0, "cat": 1, "dog": 2}
    assert "ImageFolder" in words.rule


@pytest.mark.parametrize("text", ['{"airplane": 404, "ship": 510}', "airplane 404\nship\t510\n# comment\n",
                                  "airplane,404\nship,510"])
def test_a_labels_file_maps_folders_to_the_models_classes(tmp_path, text):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    assert read_labels_file(path) == {"airplane": 404, "ship": 510}
    mapping = map_classes(["airplane", "ship"], path)
    assert mapping.space == "index" and mapping.labels == {"airplane": 404, "ship": 510}
    assert str(path) in mapping.rule


@pytest.mark.parametrize("text, message", [
    ('{"airplane": "x"}', "must be an integer"),
    ("airplane 404 extra", "expected 'folder-name class-index'"),
    ('{"airplane": -1}', "must be >= 0"),
    ("", "maps no folder"),
    ('{"airplane": 1', "is not valid JSON"),
])
def test_bad_labels_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "labels.json"
    path.write_text(text)
    with pytest.raises(HacError, match=message):
        read_labels_file(path)


def test_a_labels_file_must_cover_every_folder(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"airplane": 404}))
    with pytest.raises(HacError, match=r"has no class index for folder\(s\) \['ship'\]"):
        map_classes(["airplane", "ship"], path)


def test_named_folders_on_an_imagenet_model_need_a_mapping(tmp_path):
    from pytest_hac.core.engine.engine import Engine
    from pytest_hac.models import get_model

    root = folder(tmp_path / "data", {"airplane": 2, "ship": 2})
    model = get_model("efficientnet-lite0")
    data = load_dataset(str(root), resize=model.resize_size, crop=model.input_size)
    with pytest.raises(HacError, match=r"2 class folders named by word.*--hac-labels=FILE.*another class order is "
                                       r"yours to map"):
        Engine(model, data)
    mapping = tmp_path / "labels.json"
    mapping.write_text(json.dumps({"airplane": 404, "ship": 510}))
    mapped = load_dataset(str(root), resize=model.resize_size, crop=model.input_size, labels=mapping)
    assert mapped.labels.tolist() == [404, 404, 510, 510]
    Engine(model, mapped)  # fits: the labels are the model's class indices
