"""The hac marker: expansion into cells, readable ids, and collection that loads nothing."""
import pytest

from pytest_hac.cases import expand
from pytest_hac.errors import HacError

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
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*weights for model 'resnet50' are not available*resnet50-*.pth*place it as*"
                                 "empty-cache/hub/checkpoints/*"])


def test_eps_list_and_attack_list_get_tags():
    cases = expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "attack": ["pgd", "fgsm"],
                    "eps": ["2/255", 8 / 255]}, {})
    assert [c.id for c in cases] == ["jpeg-q50-r1-oblivious-pgd-eps2", "jpeg-q50-r1-oblivious-pgd-eps8",
                                     "jpeg-q50-r1-oblivious-fgsm-eps2", "jpeg-q50-r1-oblivious-fgsm-eps8"]


def test_thresholds_by_threat_and_by_cell_pattern():
    cases = expand({"codecs": {"jpeg": [25, 75]}, "threats": ["clean", "oblivious"],
                    "min_accuracy": {"clean": 0.8, "jpeg-q25-*-oblivious-*": 0.4}}, {})
    assert {c.id: c.threshold for c in cases} == {
        "jpeg-q25-r1-clean": 0.8, "jpeg-q25-r1-oblivious-pgd": 0.4,
        "jpeg-q75-r1-clean": 0.8, "jpeg-q75-r1-oblivious-pgd": None,
    }


def test_query_threat_uses_a_gradient_free_attack():
    (case,) = expand({"codecs": {"jpeg": [50]}, "threats": ["query"], "attack": "pgd"}, {})
    assert case.attack.name == "square" and case.id == "jpeg-q50-r1-query-square"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"codecs": {"jpg": [50]}}, "unknown codec 'jpg'. Did you mean 'jpeg'?"),
        ({"codecs": {"jpeg": [0]}}, "quality 0 is out of range for codec 'jpeg': valid qualities are 1..100"),
        ({"codecs": {"jpeg": [101]}}, "valid qualities are 1..100"),
        ({"codecs": {"jpeg": [50]}, "rounds": [0]}, "rounds must be >= 1"),
        ({"codecs": {"jpeg": [50]}, "threats": ["whitebx"]}, "unknown threat 'whitebx'. Did you mean 'whitebox'?"),
        ({"codecs": {"jpeg": [50]}, "attack": "pgdd"}, "unknown attack 'pgdd'"),
        ({"codecs": {"jpeg": [50]}, "eps": -0.1}, "eps must be >= 0"),
        ({"codecs": {"jpeg": [50]}, "eps": 1.5}, "exceeds 1"),
        ({"codecs": {"jpeg": [50]}, "min_accuracy": 1.5}, "min_accuracy must be a fraction in [0, 1]"),
        ({"codecs": {"jpeg": [50]}, "epsilon": 0.1}, "unknown hac marker argument(s) ['epsilon']"),
        ({"codecs": {"identity": [3]}}, "codec 'identity' has no quality setting"),
    ],
)
def test_bad_marker_arguments(kwargs, message):
    with pytest.raises(HacError) as info:
        expand(kwargs, {})
    assert message in str(info.value)


def test_bad_marker_is_a_clean_collection_error(suite):
    result = suite("""
import pytest

@pytest.mark.hac(codecs={"jpeg": [0]})
def test_bad(hac_case):
    pass
""").runpytest()
    result.stdout.fnmatch_lines(["*test_bad: quality 0 is out of range for codec 'jpeg'*"])
    assert result.ret != 0


def test_hac_case_without_marker_says_so(suite):
    result = suite("def test_nomark(hac_case):\n    pass\n").runpytest()
    result.stdout.fnmatch_lines(["*uses hac_case but has no @pytest.mark.hac(...) marker*"])
