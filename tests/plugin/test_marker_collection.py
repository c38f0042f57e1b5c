"""The hac marker in a pytest run: it is registered, its cells get readable ids, collection loads nothing,
and a bad marker or a missing one is a clean error."""
import pytest

MATRIX = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [25, 50], "identity": []}, rounds=[1, 3],
                 threats=["clean", "black-box", "whitebox"], attack="pgd", eps="4/255")
def test_matrix(hac_case, hac_evaluate):
    pass
"""


def test_marker_expands_into_named_cells(suite):
    result = suite(MATRIX).runpytest("--collect-only", "-q")
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.stdout.lines if "test_matrix[" in line]
    assert ids == [
        "jpeg-q25-r1-clean", "jpeg-q25-r1-oblivious-pgd", "jpeg-q25-r1-whitebox-pgd",
        "jpeg-q25-r3-clean", "jpeg-q25-r3-oblivious-pgd", "jpeg-q25-r3-whitebox-pgd",
        "jpeg-q50-r1-clean", "jpeg-q50-r1-oblivious-pgd", "jpeg-q50-r1-whitebox-pgd",
        "jpeg-q50-r3-clean", "jpeg-q50-r3-oblivious-pgd", "jpeg-q50-r3-whitebox-pgd",
        "identity-r1-clean", "identity-r1-oblivious-pgd", "identity-r1-whitebox-pgd",
    ]


def test_collection_loads_no_model(suite, monkeypatch):
    """--collect-only works for a model whose weights are not here (nothing is loaded)."""
    monkeypatch.setenv("HAC_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(suite(MATRIX).path / "empty-cache"))
    result = suite(MATRIX).runpytest("--collect-only", "-q", "--hac-model=vit")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*15 tests collected*"])


def test_missing_weights_fail_with_the_file_to_place(suite, monkeypatch):
    monkeypatch.setenv("HAC_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(suite(MATRIX).path / "empty-cache"))
    result = suite(MATRIX.replace("pass", "hac_evaluate(hac_case)")).runpytest("--hac-model=resnet50", "-k",
                                                                           "identity-r1-clean")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # once, before any cell: not one failure per cell
    result.stderr.fnmatch_lines(["*weights for model 'resnet50' are not available*resnet50-*.pth*place it as*"
                                 "empty-cache/hub/checkpoints/*"])


def test_bad_markers_are_usage_errors(suite, pytester):
    suite("""
import pytest

@pytest.mark.hac(codecs={"jpeg": [0]})
def test_bad(hac_case):
    pass
""")
    pytester.makepyfile(test_typo="""
import pytest

@pytest.mark.hac(codecs={"jpeg": [50]}, threats=["oblivous"])
def test_typo(hac_case):
    pass
""")
    result = pytester.runpytest()
    # each module's bad marker named, with pytest's usage-error exit status, as the README says
    result.stdout.fnmatch_lines(["*usage error: test_cells.py::test_bad: quality 0 is out of range for codec 'jpeg'*",
                                 "*usage error: test_typo.py::test_typo: unknown threat 'oblivous'. Did you mean "
                                 "'oblivious'?*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_implausible_budgets_warn_in_255_units_at_the_test(suite):
    result = suite("""
import pytest

@pytest.mark.hac(codecs={"jpeg": [50]}, threats=["oblivious"], eps=0.5)
def test_half(hac_case):
    pass

@pytest.mark.hac(codecs={"jpeg": [50]}, threats=["oblivious"], eps="8/2550")
def test_tenth(hac_case):
    pass

@pytest.mark.hac(codecs={"jpeg": [50]}, threats=["oblivious"], eps="64/255", large_eps=True)
def test_meant(hac_case):
    pass

@pytest.mark.hac(codecs={"jpeg": [50]}, threats=["oblivious"], eps=["2/255", "16/255", "32/255"])
def test_usual(hac_case):
    pass
""").runpytest("--collect-only", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*test_cells.py:3: BudgetWarning: hac marker: L-inf eps 0.5 is 127.5/255, above 32/255*large_eps=True*",
        "*",
        "*test_cells.py:7: BudgetWarning: hac marker: L-inf eps '8/2550' is 0.8/255, less than one 8-bit level*"])
    assert result.stdout.str().count("BudgetWarning") == 2  # opted in, and the usual budgets: no warning


def test_hac_case_without_marker_says_so(suite):
    result = suite("def test_nomark(hac_case):\n    pass\n").runpytest()
    result.stdout.fnmatch_lines(["*uses hac_case but has no @pytest.mark.hac(...) marker*"])


def test_marker_is_registered(pytester):
    pytester.runpytest("--markers").stdout.fnmatch_lines(["@pytest.mark.hac(*"])
