"""--hac-update-thresholds' file editing: values in the model's table, everything else kept as written."""
import tomllib

import pytest

from pytest_hac.core.gates import Thresholds
from pytest_hac.core.threshold_update import HEADER, threshold_of, update_file, update_text
from pytest_hac.errors import HacError

HAND_WRITTEN = """# Our gates. Do not lose this comment.

["*"]
"*-clean" = 0.5   # every model keeps half of the clean images

[resnet50]
"identity-r1-clean" = 0.948   # paper 0.998

[tiny-cnn]
# patterns first
"jpeg-*-oblivious-*" = 0.3
"jpeg-q50-r1-clean" = 0.7     # kept comment

[vit]
"identity-r1-clean" = 0.949
"""


@pytest.mark.parametrize(("ci_low", "margin", "expected"), [
    (0.57, 0.02, 0.55), (0.8061, 0.02, 0.78), (0.0, 0.02, 0.0), (0.3, 0.0, 0.3), (0.999, 0.02, 0.97)])
def test_threshold_is_the_interval_low_end_minus_margin_rounded_down(ci_low, margin, expected):
    assert threshold_of(ci_low, margin) == expected


def test_update_keeps_other_tables_comments_and_patterns():
    new = update_text(HAND_WRITTEN, "tiny-cnn", {"jpeg-q50-r1-clean": 0.81, "jpeg-q50-r1-oblivious-pgd": 0.42})
    assert new.startswith("# Our gates. Do not lose this comment.")
    assert '"jpeg-q50-r1-clean" = 0.81     # kept comment' in new
    assert '"*-clean" = 0.5   # every model keeps half' in new and '"identity-r1-clean" = 0.948   # paper' in new
    data = tomllib.loads(new)
    assert data["tiny-cnn"] == {"jpeg-*-oblivious-*": 0.3, "jpeg-q50-r1-clean": 0.81, "jpeg-q50-r1-oblivious-pgd": 0.42}
    assert data["vit"] == {"identity-r1-clean": 0.949} and data["resnet50"] == {"identity-r1-clean": 0.948}
    # the written exact entry comes after the hand-written pattern, so it is the one in force
    assert Thresholds(None, data).lookup("tiny-cnn", "jpeg-q50-r1-oblivious-pgd") == 0.42
    assert new.index("jpeg-q50-r1-oblivious-pgd") < new.index("[vit]")


def test_a_new_model_gets_its_own_table_and_a_new_file_a_header(tmp_path):
    new = update_text(HAND_WRITTEN, "timm:resnet18", {"identity-r1-clean": 0.6})
    assert tomllib.loads(new)["timm:resnet18"] == {"identity-r1-clean": 0.6}
    assert new.startswith(HAND_WRITTEN.rstrip("\n"))
    path = tmp_path / "hac_thresholds.toml"
    assert update_file(path, "tiny-cnn", {"jpeg-q50-r1-clean": 0.5}) == ['[tiny-cnn] "jpeg-q50-r1-clean" = 0.50']
    assert path.read_text().startswith(HEADER) and Thresholds.load(path).lookup("tiny-cnn", "jpeg-q50-r1-clean") == 0.5
    update_file(path, "tiny-cnn", {"jpeg-q50-r1-clean": 0.25})  # a second update replaces, never duplicates
    assert tomllib.loads(path.read_text())["tiny-cnn"] == {"jpeg-q50-r1-clean": 0.25}


def test_a_broken_file_is_refused_untouched(tmp_path):
    path = tmp_path / "hac_thresholds.toml"
    path.write_text("[tiny-cnn\n")
    with pytest.raises(HacError, match="not valid TOML"):
        update_file(path, "tiny-cnn", {"a": 0.5})
    assert path.read_text() == "[tiny-cnn\n"
