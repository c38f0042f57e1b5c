"""Bad input: every mistake a user can make ends in a message that names the fix, never a traceback.

Settings and marker values already covered in plugin/test_options.py and unit/test_marker_expansion.py
(unknown model, attack, codec, threat; quality out of range; eps < 0 or > 1; rounds < 1; bad batch size,
gate, device, shard) are not repeated here. The rows of docs/reliability.md's "Bad input" tables come
from these tests (and from those two files).
"""
import json

import hypothesis.internal.observability  # noqa: F401  (see below)
import numpy as np
import pytest
import torch
from PIL import Image

from pytest_hac.data import load_dataset, load_image
from pytest_hac.errors import HacError

CELL = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [50]}, threats=["clean"])
def test_cell(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""
# Imported once here: pytester's in-process runs drop modules first imported inside them, and hypothesis's
# pytest plugin imports hypothesis (2 s) in every run's terminal summary otherwise.
TINY = "--hac-model=tiny-cnn"  # 32x32 inputs: a folder of photos is evaluated in well under a second


def photo(seed: int = 0, size: tuple[int, int] = (40, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def image_tree(root, layout: dict[str, list[str]]):
    """Class folders under ``root``; each file is a small random PNG unless its name says otherwise."""
    root.mkdir(parents=True, exist_ok=True)
    for cls, files in layout.items():
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(files):
            photo(i).save(folder / name)
    return root


def corrupt_files(folder):
    """Three ways an image file is unreadable: garbage bytes, a truncated JPEG, an empty file."""
    (folder / "garbage.jpg").write_bytes(b"\x00not an image at all" * 20)
    good = folder / "whole.jpg"
    photo(7, (64, 64)).save(good, quality=90)
    (folder / "truncated.jpg").write_bytes(good.read_bytes()[:300])
    good.unlink()
    (folder / "empty.png").write_bytes(b"")
    return ["garbage.jpg", "truncated.jpg", "empty.png"]


def failure_text(result) -> str:
    return result.stdout.str() + result.stderr.str()


def assert_usage_error(result, message: str) -> None:
    """Anything that prevents evaluating at all is one usage error (exit 4) with the fix, not N failed cells."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not {"passed", "failed"} & set(result.parseoutcomes())
    text = failure_text(result)
    assert message in text and text.count(message) == 1
    assert "Traceback" not in text


# --- data sets ---------------------------------------------------------------------------------------


def _missing(tmp):
    return tmp / "nowhere"


def _empty(tmp):
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _loose(tmp):
    (tmp / "loose").mkdir()
    photo().save(tmp / "loose" / "a.png")
    return tmp / "loose"


def _a_file(tmp):
    photo().save(tmp / "one.png")
    return tmp / "one.png"


def _odd_names(tmp):
    return image_tree(tmp / "odd", {"cats": ["a.png"], "dogs": ["b.png"]})


def _no_images(tmp):
    root = image_tree(tmp / "noimg", {"0": [], "1": []})
    (root / "0" / "notes.txt").write_text("not an image")
    return root


def _all_corrupt(tmp):
    root = image_tree(tmp / "bad", {"0": []})
    corrupt_files(root / "0")
    return root


@pytest.mark.filterwarnings("ignore:pytest-hac. skipping unreadable image")
@pytest.mark.parametrize("make, message", [
    (_missing, "no such file or directory. Use 'embedded', 'digits', or a folder with one sub-folder per class"),
    (_empty, "is empty or has no class folders: expected e.g. val/n01440764/*.JPEG"),
    (_loose, "holds 1 image(s) directly but no class folders; move them into one sub-folder per class"),
    (_a_file, "is a file; give a folder with one sub-folder per class"),
    (_odd_names, "has 2 class folders named by word, labelled 0..1 in sorted order (torchvision's ImageFolder "
                 "convention), but model 'tiny-cnn' has 10 classes: give --hac-labels=FILE mapping each folder name"),
    (_no_images, "no readable images under"),
    (_all_corrupt, "all 3 image files are unreadable"),
], ids=["missing", "empty", "no-class-folders", "a-file", "unmappable-names", "no-images", "all-corrupt"])
def test_bad_data_folders_are_one_usage_error_with_the_fix(suite, tmp_path, make, message):
    data = make(tmp_path)
    assert_usage_error(suite(CELL).runpytest(TINY, f"--hac-data={data}"), message)


def test_misspelt_data_name_suggests_the_closest():
    with pytest.raises(HacError, match=r"--hac-data='embeded': no such file or directory. Did you mean 'embedded'\?"):
        load_dataset("embeded", resize=32, crop=32)


def test_misspelt_data_folder_suggests_the_near_miss(tmp_path):
    (tmp_path / "imagenette2-320/val/n01440764").mkdir(parents=True)
    wrong = tmp_path / "imagenette2-320/vall"
    with pytest.raises(HacError, match=rf"--hac-data='{wrong}': no such file or directory. Did you mean "
                                       rf"'{tmp_path / 'imagenette2-320/val'}'\?"):
        load_dataset(str(wrong), resize=32, crop=32)
    with pytest.raises(HacError, match=rf"Did you mean '{tmp_path / 'imagenette2-320/val'}'\?"):
        load_dataset(str(tmp_path / "imagenete2-320/val"), resize=32, crop=32)  # a typo higher up


def test_unreadable_images_are_skipped_counted_and_reported(suite, tmp_path):
    root = image_tree(tmp_path / "data", {"0": ["a.png", "b.png"], "1": ["c.png", "d.png"]})
    bad = corrupt_files(root / "1")
    (root / "1" / "._c.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # hidden: ignored silently
    (root / "1" / "README.txt").write_text("not an image")  # not an image suffix: ignored silently
    p = suite(CELL)
    result = p.runpytest(TINY, f"--hac-data={root}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*skipping unreadable image 1/garbage.jpg*"])
    report = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    assert sorted(report["skipped_images"]) == sorted(f"1/{name}" for name in bad)
    assert report["n"] == 4 and report["results"][0]["n"] == 4
    md = (p.path / "reports/tiny-cnn.md").read_text()
    assert "**skipped unreadable images** 3:" in md and "1/truncated.jpg" in md

    strict = p.runpytest(TINY, f"--hac-data={root}", "--hac-strictness=strict")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR
    assert "unreadable image 1/empty.png in " in failure_text(strict)
    assert "; remove it or drop --hac-strictness=strict" in failure_text(strict)


def _save_modes(folder):
    rgb = photo(3, (40, 30))
    rgb.convert("L").save(folder / "grey.png")
    rgb.convert("RGBA").save(folder / "alpha.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    rgb.convert("P").save(folder / "palette.png")
    rgb.convert("1").save(folder / "bilevel.png")
    Image.fromarray(np.full((30, 40), 32768, np.uint16)).save(folder / "grey16.png")  # mid-grey, 16 bits
    Image.fromarray(np.full((30, 40), 0.5, np.float32), "F").save(folder / "float.tif")  # mid-grey in [0, 1]
    photo(4, (5, 5)).save(folder / "tiny5x5.png")
    return 8


def test_odd_image_modes_and_sizes_are_converted_and_evaluated(suite, tmp_path):
    root = tmp_path / "modes"
    (root / "3").mkdir(parents=True)
    count = _save_modes(root / "3")
    p = suite(CELL)
    result = p.runpytest(TINY, f"--hac-data={root}")
    result.assert_outcomes(passed=1)
    report = json.loads((p.path / "reports/tiny-cnn.json").read_text())
    assert report["n"] == count and report["skipped_images"] == []
    (cell,) = report["results"]
    assert cell["n"] == count and cell["bpp"] > 0 and 0 <= cell["accuracy"] <= 1


def test_sixteen_bit_and_float_images_keep_their_brightness(tmp_path):
    """PIL's convert('RGB') clips 16-bit grey to white and float grey to black; both must stay mid-grey."""
    Image.fromarray(np.full((30, 40), 32768, np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray(np.full((30, 40), 0.5, np.float32), "F").save(tmp_path / "f.tif")
    Image.fromarray(np.full((30, 40, 4), 200, np.uint8), "RGBA").save(tmp_path / "rgba.png")
    for name, expected in [("g16.png", 0.5), ("f.tif", 0.5), ("rgba.png", 200 / 255)]:
        x = load_image(tmp_path / name, 32, 32)  # decoded photos are 8-bit
        assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
        assert abs(float(x.float().mean()) / 255 - expected) < 0.01, name


def test_images_smaller_than_a_codec_stride_are_padded_and_cropped_back():
    from compressai.models import ScaleHyperprior

    from pytest_hac.codecs import get_codec
    from pytest_hac.codecs.compressai_codec import CompressAICodec

    x = torch.rand(2, 3, 5, 5)
    torch.manual_seed(0)
    learned = CompressAICodec(ScaleHyperprior(8, 8), name="random-hyperprior", quality=1)  # stride 64
    for codec in (get_codec("jpeg", 50), learned):  # JPEG: 16x16 MCUs
        y, bpp = codec.roundtrip(x)
        assert y.shape == x.shape and bool((bpp > 0).all())
        assert codec.approximate(x).shape == x.shape


def test_more_samples_than_images_names_the_maximum(suite):
    result = suite(CELL).runpytest(TINY, "--hac-samples=501")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hac-samples=501 is larger than data set 'digits', which has 500 usable "
                                 "images; use --hac-samples=500 or fewer*"])


# --- users' models -----------------------------------------------------------------------------------

USER_MODELS = """
import torch
from torch import nn


class Head(nn.Module):
    input_size = 32

    def __init__(self, classes, fn=None):
        super().__init__()
        self.fc = nn.Linear(3, classes)
        self.fn = fn

    def forward(self, x):
        out = self.fc(x.mean(dim=(2, 3)))
        return self.fn(out) if self.fn else out


def ten():
    return Head(10)

def nan():
    return Head(10, lambda z: z * float("nan"))

def inf():
    return Head(10, lambda z: z.clamp(min=0) * float("inf") - 1)

def five():
    return Head(5)

def seven():
    return Head(7)

def probabilities():
    return Head(10, lambda z: z.softmax(-1))

def flat():
    return Head(10, lambda z: z.sum(-1))

def crashes():
    m = Head(10)
    m.input_size = 224
    m.forward = lambda x: x.view(-1, 12345)
    return m

def not_a_module():
    return lambda x: x
"""


@pytest.fixture
def index_folder(tmp_path):
    """Eight images in class folders 0..7 (class-index labels fit any model with enough logits)."""
    return image_tree(tmp_path / "idx", {str(c): [f"{c}.png"] for c in range(8)})


@pytest.mark.parametrize("factory, message", [
    ("nan", "model 'usermodels:nan' produced NaN or inf logits; check its weights and input range ([0, 1])"),
    ("inf", "model 'usermodels:inf' produced NaN or inf logits"),
    ("five", "data set 'idx' has label 7 but model 'usermodels:five' has only 5 classes"),
    ("probabilities", "returns probabilities (rows sum to 1); return logits"),
    ("flat", "model 'usermodels:flat' returned (1,); a classifier returns (N, classes) logits"),
    ("crashes", "fails on a probe batch of shape (1, 3, 224, 224) in [0, 1]"),
    ("not_a_module", "the factory returned function, not a torch.nn.Module"),
    ("nosuch", "cannot import 'nosuch' from 'usermodels'"),
])
def test_broken_user_models_fail_with_what_is_wrong(suite, pytester, index_folder, factory, message):
    p = suite(CELL)
    pytester.makepyfile(usermodels=USER_MODELS)
    pytester.syspathinsert()
    result = p.runpytest(f"--hac-model=usermodels:{factory}", f"--hac-data={index_folder}")
    if factory in ("nan", "inf", "probabilities"):  # seen only when images are classified: the cell fails, said once
        result.assert_outcomes(failed=1)
        assert message in failure_text(result) and "During handling" not in failure_text(result)
    else:
        assert_usage_error(result, message)


def test_user_model_of_other_classes_than_the_data(suite, pytester):
    p = suite(CELL)
    pytester.makepyfile(usermodels=USER_MODELS)
    pytester.syspathinsert()
    result = p.runpytest("--hac-model=usermodels:seven", "--hac-data=embedded", "--hac-samples=2")
    assert_usage_error(result, "but model 'usermodels:seven' has only 7 classes; pick a model whose logits cover")


def test_user_model_with_ten_logits_runs_on_digits(suite, pytester):
    p = suite(CELL)
    pytester.makepyfile(usermodels=USER_MODELS)
    pytester.syspathinsert()
    p.runpytest("--hac-model=usermodels:ten", "--hac-data=digits", "--hac-samples=4").assert_outcomes(passed=1)


def test_logits_of_the_wrong_width_are_caught_batch_by_batch():
    from pytest_hac.models import Classifier, check_logits

    model = Classifier(torch.nn.Identity(), mean=(0, 0, 0), std=(1, 1, 1), num_classes=10, input_size=32,
                       resize_size=32, label_space="index", name="m")
    with pytest.raises(HacError, match="returned 9 logits, expected 10"):
        check_logits(model, torch.randn(4, 9))
    check_logits(model, torch.randn(4, 10))  # ordinary logits pass


# --- settings the other test files do not try ---------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--hac-steps=0"], "--hac-steps: N and queries= must be >= 1; got '0'"),
    (["--hac-seed=-1"], "--hac-seed takes an integer from 0 to 2**63 - 1; got -1"),
    (["--hac-seed=18446744073709551616"], "--hac-seed takes an integer from 0 to 2**63 - 1"),
    (["--hac-compare", "--hac-fail-drop=nan"], "--hac-fail-drop takes a margin in percentage points >= 0; got nan"),
    (["--hac-compare", "--hac-fail-drop=-1"], "--hac-fail-drop takes a margin in percentage points >= 0; got -1.0"),
    (["--hac-cache-mb=-5"], "--hac-cache-mb must be >= 0"),
    (["--hac-batch-size=big"], "--hac-batch-size takes a positive integer or 'auto'; got 'big'"),
    (["--hac-eps=4/0"], "cannot read eps '4/0'; write it as 0.0157 or 4/255"),
    (["--hac-eps=nan"], "cannot read eps 'nan'"),
    (["--hac-thresholds=missing.toml"], "--hac-thresholds='missing.toml': no such file"),
    (["--hac-model=model.pt"], "no such model file"),
    (["--hac-gallery=-1"], "--hac-gallery takes a number of photos >= 0 (0: no gallery); got -1"),
    (["--hac-progress=-5"], "--hac-progress takes auto, off or SECONDS > 0 between log lines; got '-5'"),
    (["--hac-update-thresholds=1.5"], "--hac-update-thresholds takes an accuracy margin in [0, 1), e.g. 0.02"),
], ids=lambda v: v[0] if isinstance(v, list) else None)
def test_more_bad_settings_are_usage_errors(suite, args, message):
    result = suite(CELL).runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in failure_text(result)
    assert "Traceback" not in failure_text(result)


# --- thresholds files and baselines ---------------------------------------------------------------------


#: A thresholds file that does not parse fails collection (exit status 2); one whose patterns match no cell
#: is refused after collection, as a usage error (exit status 4). Either way no test runs.
USAGE_ERROR = pytest.ExitCode.USAGE_ERROR  # bad thresholds files too: collection errors that exit 4


@pytest.mark.parametrize("content, exit_status, message", [
    (b'[efficientnet-lite0\n"x" = 1', USAGE_ERROR, "is not valid TOML"),
    (b'[efficientnet-lite0]\n"*-clean" = 1.5', USAGE_ERROR, "thresholds are fractions in [0, 1]"),
    (b'[efficientnet-lite0]\n"jpeg-q99-*" = 0.5', USAGE_ERROR, "match no cell"),
    (b'["*"]\n"*-clan" = 0.5\n', USAGE_ERROR, "patterns ['[*] *-clan'] match no cell"),
    (b'"*-clean" = 0.5\n', USAGE_ERROR, "'*-clean' = 0.5 is outside a table: put \"cell-pattern\" = accuracy "
                                            "lines under a [model] or [\"*\"] table header"),
    ('["*"]\n"*-clean" = 0.5 # caf\u00e9\n'.encode("latin-1"), USAGE_ERROR, "is not UTF-8 text"),
], ids=["not-toml", "above-one", "unknown-model-cell", "unknown-star-cell", "outside-table", "not-utf8"])
def test_bad_thresholds_files(suite, content, exit_status, message):
    p = suite(CELL)
    (p.path / "hac_thresholds.toml").write_bytes(content)
    result = p.runpytest("--hac-samples=4")
    assert result.ret == exit_status
    assert not {"passed", "failed"} & set(result.parseoutcomes())
    assert message in failure_text(result)
    assert "Traceback" not in failure_text(result)


@pytest.mark.parametrize("content, message", [
    ('{"schema": 2, "results": []}', "report is damaged or hand-edited (schema 2 but KeyError: 'model')"),
    ('[1, 2, 3]', "a report is a JSON object with 'schema', 'model' and 'results'; got a list"),
    ('{"schema": 2, "model": "tiny-cnn", "dataset": "digits", "n": 4, "device": "cpu", "seed": 0, '
     '"gate_rule": "point", "results": [{"case_id": "x"}]}', "report is damaged or hand-edited"),
    ('{"schema": 2, "model": "tiny-cnn", "dataset"', "is not valid JSON"),
], ids=["missing-keys", "not-an-object", "damaged-result", "truncated"])
def test_damaged_baselines_are_usage_errors(suite, content, message):
    p = suite(CELL)
    (p.path / ".hac/baselines").mkdir(parents=True)
    (p.path / ".hac/baselines/tiny-cnn.json").write_text(content)
    result = p.runpytest(TINY, "--hac-compare")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str()
