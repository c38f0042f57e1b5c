"""Old spellings of folded settings stop the run with pytest-hac's usage error naming the new spelling."""
import pytest

from pytest_hac.settings import REMOVED

CELL = """
import pytest

@pytest.mark.hac(codecs={"identity": []}, threats=["clean"])
def test_cell(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""
NEW = dict((old.name, new) for old, new in REMOVED)


@pytest.mark.parametrize("old", [old for old, _ in REMOVED], ids=[old.name for old, _ in REMOVED])
def test_an_old_option_names_its_replacement(suite, old):
    result = suite(CELL).runpytest(f"{old.flag}=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: pytest-hac: {old.flag} was removed in 0.1: use {NEW[old.name]}" in result.stderr.str()


@pytest.mark.parametrize("name", ["strict", "progress_every", "cache_clear"])
def test_an_old_ini_key_or_environment_variable_names_its_replacement(suite, monkeypatch, name):
    old = next(o for o, _ in REMOVED if o.name == name)
    result = suite(CELL, ini=f"{old.ini} = true").runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: pytest-hac: ini {old.ini} was removed in 0.1: use {NEW[name]}" in result.stderr.str()
    monkeypatch.setenv(old.env, "1")
    result = suite(CELL).runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: pytest-hac: {old.env} was removed in 0.1: use {NEW[name]}" in result.stderr.str()


def test_old_flags_are_not_in_help(suite):
    text = suite(CELL).runpytest("--help").stdout.str()
    assert "--hac-progress=" in text and "--hac-no-progress" not in text and "--hac-cache-dir" not in text
