"""Where the live line does not show (here: output is not a terminal), progress lines go to the log."""
import re

CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 60, 90], "identity": []}, threats=["clean"])
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""
ARGS = ("--hac-model=tiny-cnn", "--hac-samples=8", "--hac-gallery=0", "-q")
LINE = re.compile(r"^pytest-hac: (\d+)/(\d+) cells done( · now \S+( \((soundness probe: )?[\w ]+ \d+/\d+\))?(, \S+)*)?"
                  r"( · [\d.]+ img/s)? · "
                  r"(about [\d.]+ (s|min|h) left|time left: estimating)$")  # a loaded machine takes minutes


def _lines(output: str, cells: int) -> list[str]:
    """The progress lines of a run's output; each has the form ``LINE`` describes."""
    lines = [line for line in output.splitlines() if "cells done" in line]
    assert lines and all(LINE.match(line) and f"/{cells} cells done" in line for line in lines), lines
    assert any("left" in line and "estimating" not in line for line in lines)
    return lines


def test_lines_with_cells_done_current_cell_speed_and_time_left(suite):
    result = suite(CELLS).runpytest(*ARGS, "--hac-progress=0.000001")
    result.assert_outcomes(passed=4)
    # in one process the engine's batches drive the lines: the stage of the current cell shows
    assert any(" · now " in line and "predict" in line for line in _lines(result.stdout.str(), 4))


def test_xdist_lines_start_before_any_cell_reports(xdist_run):
    # the controller knows the cells running and the run's size before any cell reports (this run: -n 2,
    # --hac-progress=0.000001)
    lines = _lines(xdist_run.output, xdist_run.cells)
    assert re.match(rf"pytest-hac: 0/{xdist_run.cells} cells done · now (jpeg|identity)-\S+ · time left: estimating$",
                    lines[0])
    assert "hac_cell_start" not in xdist_run.output


def test_no_lines_in_a_short_run_or_when_turned_off(suite):
    p = suite(CELLS)
    for extra in ((), ("--hac-progress=off",)):
        result = p.runpytest(*ARGS, *extra)
        result.assert_outcomes(passed=4)
        assert "cells done" not in result.stdout.str()


def test_probes_are_named_as_probes_and_the_file_name_is_not_repeated(suite):
    p = suite(CELLS.replace('threats=["clean"]', 'threats=["clean", "oblivious"], attack="pgd", eps="8/255", steps=2'))
    result = p.runpytest(*ARGS[:-1], "--hac-progress=0.000001")  # pytest's default output: the file's name
    result.assert_outcomes(passed=8)
    out = result.stdout.str()
    lines = _lines(out, 8)
    assert any("(soundness probe: " in line for line in lines)  # the undefended large-eps attack, the gradients
    assert len(re.findall(r"^test_cells\.py ", out, re.M)) == 1, out  # the dots go on below each line
    body = out[out.index("test_cells.py "):out.index("[100%]")]
    assert "\n\n" not in body  # and no blank line before a progress line
