"""The folded settings: each old spelling is a usage error naming the new one; each folded value works."""
from pathlib import Path

import pytest

from pytest_hac.errors import HacError
from pytest_hac.setting_values import THRESHOLD_MARGIN, Eps, InputSize, Steps
from pytest_hac.settings import DECIDING, OPTIONS, REMOVED, Settings, settings_from


def _settings(**given) -> Settings:
    """Settings from command-line values by field name (nothing from the environment or an ini file)."""
    return settings_from(lambda opt: given.get(opt.name), lambda opt: None, env={})


def test_at_most_36_settings_and_deciding_names_only_settings():
    assert len(OPTIONS) <= 36
    names = {opt.name for opt in OPTIONS}
    assert set(DECIDING) <= names
    assert not names & {old.name for old, _ in REMOVED}  # no alias: an old name is never a setting again


@pytest.mark.parametrize("where", ["cli", "ini", "env"])
@pytest.mark.parametrize(("old", "new"), REMOVED, ids=[old.name for old, _ in REMOVED])
def test_every_old_spelling_is_an_error_naming_the_new_one(old, new, where):
    def given(place):
        return lambda opt: "1" if where == place and opt.name == old.name else None

    with pytest.raises(HacError) as caught:
        settings_from(given("cli"), given("ini"), env={old.env: "1"} if where == "env" else {})
    spelling = {"cli": old.flag, "ini": f"ini {old.ini}", "env": old.env}[where]
    assert str(caught.value) == f"{spelling} was removed in 0.1: use {new}"
    assert "--hac-" in new or "pytest-hac" in new


@pytest.mark.parametrize(("value", "expected"), [("auto", 30.0), ("off", None), ("5", 5.0), ("0.5", 0.5)])
def test_progress_is_auto_off_or_seconds(value, expected):
    assert _settings(progress=value).progress == expected


@pytest.mark.parametrize("value", ["0", "-1", "never", "inf"])
def test_progress_refuses_what_is_not_auto_off_or_seconds(value):
    with pytest.raises(HacError, match="--hac-progress takes auto, off or SECONDS > 0"):
        _settings(progress=value)


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", THRESHOLD_MARGIN), ("true", THRESHOLD_MARGIN),
                                                 ("0.1", 0.1), ("0", 0.0), ("false", None)])
def test_update_thresholds_alone_takes_the_default_margin_or_the_given_one(value, expected):
    assert _settings(update_thresholds=value).update_thresholds == expected


def test_update_thresholds_refuses_a_margin_outside_zero_to_one():
    with pytest.raises(HacError, match=r"--hac-update-thresholds takes an accuracy margin in \[0, 1\)"):
        _settings(update_thresholds="1.5")


@pytest.mark.parametrize(("value", "strict"), [("lenient", False), ("normal", False), ("strict", True)])
def test_strictness_levels(value, strict):
    assert _settings(strictness=value).strictness == value
    with pytest.raises(HacError, match="--hac-strictness must be one of lenient, normal, strict; got 'loose'"):
        _settings(strictness="loose")


def test_eps_input_size_and_steps_carry_their_second_part():
    s = _settings(eps="8/255,l2=3.0", input_size="224,resize=256", steps="20,queries=1000")
    assert s.eps == Eps(8 / 255, 3.0) and s.input_size == InputSize(224, 256) and s.steps == Steps(20, 1000)
    assert s.marker_defaults == {"attack": "pgd", "eps": 8 / 255, "eps_l2": 3.0, "steps": 20, "queries": 1000}
    alone = _settings(input_size="resize=64", steps="queries=500")
    assert alone.input_size == InputSize(None, 64) and alone.steps == Steps(None, 500)
    assert _settings().eps == Eps(4 / 255, None)


@pytest.mark.parametrize(("given", "message"), [
    ({"eps": "l2=3.0"}, "--hac-eps names no L-inf budget"),
    ({"eps": "4/255,l1=2"}, "--hac-eps takes BUDGET[,l2=R]"),
    ({"input_size": "224,resize=128"}, "resize=128 is smaller than the crop 224"),
    ({"input_size": "big"}, "--hac-input-size takes SIZE[,resize=N]"),
    ({"steps": "20,queries=0"}, "--hac-steps: N and queries= must be >= 1"),
])
def test_bad_second_parts_are_usage_errors(given, message):
    with pytest.raises(HacError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _settings(**given)


def test_fail_drop_needs_a_baseline_or_a_history():
    with pytest.raises(HacError, match=r"--hac-fail-drop needs something to find a drop against: add "
                                       r"--hac-compare\[=NAME\].*--hac-history=DIR"):
        _settings(fail_drop="2")
    assert _settings(fail_drop="2", compare="").fail_drop == 2.0
    assert _settings(fail_drop="2", history="hist").fail_drop == 2.0


def test_a_baseline_is_a_name_kept_under_hac_baselines_or_a_json_file():
    s = _settings(compare="", save_baseline="nightly")
    assert s.compare == Path(".hac/baselines/efficientnet-lite0.json")
    assert s.save_baseline == Path(".hac/baselines/nightly.json")
    assert _settings(compare="ci/base.json").compare == Path("ci/base.json")
    assert _settings(save_baseline="../../escaped").save_baseline == Path(".hac/baselines/escaped.json")


def test_decode_workers_and_cache():
    s = _settings(decode_workers="3", cache="some/dir")
    assert s.decode_workers == 3 and s.cache == Path("some/dir")
    with pytest.raises(HacError, match="--hac-decode-workers must be >= 1"):
        _settings(decode_workers="0")
