"""The one wording of durations, accuracies, eps and TOML keys (pytest_hac.formats)."""
import tomllib

import pytest

from pytest_hac.core.judge.thresholds import update_file
from pytest_hac.formats import accuracy, duration, eps_label, interval, toml_key


@pytest.mark.parametrize("name", [
    'jpeg-q50-r1-"quoted"', "back\\slash-*", 'both \\" and "\\', "tab\there", "new\nline", "bell\x07",
    "ünïcode-cell", "with space", "*", "plain-id_1",
])
def test_a_toml_key_reads_back_as_the_same_string(name):
    text = f"[{toml_key('model')}]\n{toml_key(name)} = 0.5\n"
    assert tomllib.loads(text) == {"model": {name: 0.5}}


def test_bare_keys_stay_bare_and_others_are_quoted():
    assert toml_key("jpeg-q50-r1-clean") == "jpeg-q50-r1-clean"
    assert toml_key("jpeg-*") == '"jpeg-*"'
    assert toml_key("ü") == '"ü"'  # TOML's bare keys are ASCII only


def test_the_thresholds_file_written_holds_a_model_name_with_quotes_and_backslashes(tmp_path):
    path = tmp_path / "hac_thresholds.toml"
    model = 'my "model" \\ v2'
    update_file(path, model, {'cell-"a"\\b': 0.42})
    assert tomllib.loads(path.read_text(encoding="utf-8"))[model] == {'cell-"a"\\b': 0.42}


def test_durations_have_one_set_of_cut_offs():
    assert [duration(s) for s in (0.04, 3.24, 42, 119, 120, 600, 7199, 10800)] == [
        "0.04 s", "3.2 s", "42 s", "119 s", "2 min", "10 min", "120 min", "3.0 h"]


def test_an_accuracy_with_its_interval():
    assert accuracy(0.85, 0.8125, 0.894) == "0.85 [0.81, 0.89]"
    assert accuracy(0.85, 0.8125, 0.894, 3) == "0.850 [0.812, 0.894]"
    assert interval(0.8125, 0.894) == "[0.812, 0.894]"


def test_eps_labels():
    assert eps_label(4 / 255) == "4/255" and eps_label(0.5, "L2") == "0.5" and eps_label(None) == "min-norm"
    assert eps_label(0.001) == "0.001"
