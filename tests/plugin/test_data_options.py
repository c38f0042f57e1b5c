"""Data as users have it: named class folders, --hac-labels, a user model's sizes, upscaled photos."""
import json

import numpy as np
import pytest
from PIL import Image

CELL = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [50]}, threats=["clean"])
def test_cell(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""

SMALL_MODEL = """
import torch
from torch import nn


class Small(nn.Module):
    '''A CIFAR-sized classifier: 32x32 pixels in, 3 logits out; says nothing about its input size.'''

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x):
        if x.shape[-1] != 32:
            raise ValueError(f"takes 32x32 images, got {tuple(x.shape)}")
        return self.net(x)


def build():
    return Small()
"""


def small_photos(root, classes=("airplane", "bird", "cat"), count=2, size=32):
    rng = np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_named_folders_follow_imagefolder_order_and_the_report_says_so(suite, pytester):
    data = small_photos(pytester.path / "cifar")
    pytester.makepyfile(small=SMALL_MODEL)
    pytester.syspathinsert()
    p = suite(CELL)
    result = p.runpytest("--hac-model=small:build", f"--hac-data={data}", "--hac-input-size=32,resize=32")
    result.assert_outcomes(passed=1)
    report = json.loads((p.path / "reports/small_build.json").read_text())
    assert report["meta"]["labels"]["map"] == {"airplane": 0, "bird": 1, "cat": 2}
    assert report["meta"]["preprocessing"]["crop"] == 32 and report["meta"]["preprocessing"]["resize"] == 32
    md = (p.path / "reports/small_build.md").read_text()
    assert "sorted folder names -> 0..N-1 (torchvision's ImageFolder order)" in md
    assert "**preprocessing** shorter side resized to 32 px, centre crop 32 px" in md
    assert "enlarged more than 2x" not in md


def test_a_user_model_without_sizes_is_fed_224_px_and_the_run_says_the_photos_were_enlarged(suite, pytester):
    data = small_photos(pytester.path / "cifar")
    pytester.makepyfile(small=SMALL_MODEL)
    pytester.syspathinsert()
    p = suite(CELL)
    result = p.runpytest("--hac-model=small:build", f"--hac-data={data}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # once, before any cell
    result.stderr.fnmatch_lines(["*fails on a probe batch of shape (1, 3, 224, 224)*--hac-input-size*"])


def test_upscaled_photos_are_a_warning_in_terminal_and_report(suite, pytester):
    data = small_photos(pytester.path / "cifar")
    pytester.makepyfile(small=SMALL_MODEL.replace("if x.shape[-1] != 32:", "if False:"))
    pytester.syspathinsert()
    p = suite(CELL)
    result = p.runpytest("--hac-model=small:build", f"--hac-data={data}")  # 32-px photos fed at 224
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*6 of 6 images were enlarged more than 2x*set --hac-input-size=SIZE,resize=N*"])
    assert "6 of 6 images were enlarged more than 2x" in (p.path / "reports/small_build.md").read_text()


def test_one_small_photo_among_larger_ones_gets_advice_that_applies(suite, pytester):
    """A registered model's sizes are its own: one 86-px photo among larger ones is the data's business."""
    data = small_photos(pytester.path / "photos", classes=("n01440764", "n02102040"), count=2, size=300)
    Image.new("RGB", (86, 120), (90, 120, 200)).save(data / "n01440764" / "small.png")
    result = suite(CELL).runpytest(f"--hac-data={data}")
    result.assert_outcomes(passed=1)
    md = (pytester.path / "reports/efficientnet-lite0.md").read_text()
    assert "1 of 5 images were enlarged more than 2x" in md and "the smallest photo's shorter side is 86 px" in md
    assert "a few small photos among larger ones; check them" in md and "--hac-input-size" not in md


def test_sizes_of_a_registered_model_are_its_own(suite):
    result = suite(CELL).runpytest("--hac-input-size=64", "--hac-samples=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # once, before any cell
    result.stderr.fnmatch_lines(["*--hac-input-size=64: model 'efficientnet-lite0' is a registered model with its "
                                 "own preprocessing (input size 224, resize 256); drop --hac-input-size*"])


def test_a_labels_file_maps_named_folders_onto_an_imagenet_model(suite, pytester):
    data = small_photos(pytester.path / "named", classes=("goldfish", "tench"), size=64)
    (pytester.path / "labels.txt").write_text("tench 0\ngoldfish 1\n")
    p = suite(CELL)
    refused = p.runpytest(f"--hac-data={data}")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR  # once, before any cell
    refused.stderr.fnmatch_lines(["*2 class folders named by word*--hac-labels=FILE*"])
    mapped = p.runpytest(f"--hac-data={data}", "--hac-labels=labels.txt")
    mapped.assert_outcomes(passed=1)
    report = json.loads((p.path / "reports/efficientnet-lite0.json").read_text())
    assert report["meta"]["labels"]["map"] == {"goldfish": 1, "tench": 0}
    assert "mapping file" in report["meta"]["labels"]["rule"]
