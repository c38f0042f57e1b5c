"""Thresholds files (hac_thresholds.toml): tables by model and pattern, and what the run says about them.

Bad thresholds files are in reliability/test_bad_input.py.
"""
import pytest


def test_a_thresholds_table_for_another_model_name_warns_and_strict_refuses(project):
    (project.path / "hac_thresholds.toml").write_text('["mymodel:buld"]\n"*-clean" = 0.99\n')
    result = project.runpytest("--hac-samples=4", "--hac-model=mymodel:build")
    result.assert_outcomes(passed=1)  # the table is for another name: nothing gated it, and the run says so
    assert "no table for model 'mymodel:build'; the file has tables [mymodel:buld] (a typo?)" in result.stdout.str()
    md = (project.path / "reports/mymodel_build.md").read_text()
    assert "no table for model 'mymodel:build'" in md
    strict = project.runpytest("--hac-samples=4", "--hac-model=mymodel:build", "--hac-strictness=strict")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR
    assert "no table for model 'mymodel:build'" in strict.stderr.str() and "an error under --hac-strictness=strict" in \
        strict.stderr.str()


def test_the_report_says_which_thresholds_tables_applied(project):
    (project.path / "hac_thresholds.toml").write_text('["*"]\n"*-clean" = 0.1\n[efficientnet-lite0]\n"jpeg-*" = 0.2\n')
    result = project.runpytest("--hac-samples=4")
    result.assert_outcomes(passed=1)
    assert "hac_thresholds.toml`: tables [*], [efficientnet-lite0] applied to 1 cell" in result.stdout.str()
    md = (project.path / "reports/efficientnet-lite0.md").read_text()
    assert "tables [*], [efficientnet-lite0] applied to 1 cell" in md


def test_thresholds_file_by_model_and_pattern(project):
    (project.path / "hac_thresholds.toml").write_text(
        '["*"]\n"*-clean" = 0.1\n\n[efficientnet-lite0]\n"jpeg-q75-*-clean" = 1.0\n')
    result = project.runpytest("--hac-samples=6", "--hac-gate=point")
    result.assert_outcomes(failed=1)  # the model's own table wins over "*"
    result = project.runpytest("--hac-samples=6", "--hac-model=mymodel:build", "--hac-gate=point")
    result.assert_outcomes(passed=1)  # other models get the "*" table



def test_the_thresholds_line_counts_the_selected_cells(suite, four_clean_cells):
    p = suite(four_clean_cells)
    (p.path / "hac_thresholds.toml").write_text('[tiny-cnn]\n"*-clean" = 0.1\n')
    result = p.runpytest("--hac-model=tiny-cnn", "--hac-samples=4", "-k", "q30 or q60")
    result.assert_outcomes(passed=2)
    assert "tables [tiny-cnn] applied to 2 cells (of 4 collected)" in result.stdout.str()
    md = (p.path / "reports/tiny-cnn.selection.md").read_text()
    assert "applied to 2 cells (of 4 collected)" in md
