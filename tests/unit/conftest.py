"""Fixtures of the library-level tests."""
import pytest
import torch


@pytest.fixture(scope="module")
def model():
    """tiny-cnn: the engine's plumbing is checked on it, EfficientNet-Lite0 only where the model is the subject.
    One per module (a test may patch it for its duration)."""
    from pytest_hac.models import get_model

    return get_model("tiny-cnn")


@pytest.fixture(scope="module")
def data(request):
    """Held-out digits at 32 px for ``model``: the module's ``DIGITS`` of them (48 unless it says)."""
    from pytest_hac.data import load_dataset

    return load_dataset("digits", resize=32, crop=32, samples=getattr(request.module, "DIGITS", 48))


@pytest.fixture(scope="session")
def photos() -> torch.Tensor:
    """Natural photos (scikit-image's CC0 astronaut and coffee) as a float batch in [0, 1]."""
    from skimage import data

    imgs = [torch.from_numpy(data.astronaut()[:256, 128:384].copy()),
            torch.from_numpy(data.coffee()[:256, :256].copy())]
    return torch.stack(imgs).permute(0, 3, 1, 2).float().div(255)


@pytest.fixture
def registries():
    """Models, codecs and attacks registered in a test vanish after it."""
    from pytest_hac.registry import snapshot

    restore = snapshot()
    yield
    restore()


PGD = {"name": "pgd", "norm": "Linf", "eps": 4 / 255, "steps": 10, "alpha": 1 / 255, "restarts": 1}


def _result(case_id: str, correct: list[bool], *, threat: str = "oblivious", attack: dict | None = None,
            threshold: float | None = None):
    from pytest_hac.attacks import AttackSpec
    from pytest_hac.core.cells.cases import Case
    from pytest_hac.core.judge.result import Result

    params = dict(PGD if attack is None and threat != "clean" else attack or {})
    case = Case("jpeg", 50, 1, threat, AttackSpec.from_dict(params), threshold, case_id)
    return Result.from_correct(correct, case, bpp=1.0, psnr=30.0, seconds=0.1,
                               ids=[f"img{i:04d}" for i in range(len(correct))])


def _report(cells, *, model: str = "tiny-cnn", dataset: str = "digits", attack: dict | None = None,
            complete: bool = True):
    from pytest_hac.core.judge.verdict import Status, Verdict
    from pytest_hac.report.schema import Cell, Report, Scope

    if isinstance(cells, dict):
        cells = [Cell(test=f"t.py::test[{k}]", result=_result(k, v, attack=attack), verdict=Verdict(Status.PASSED))
                 for k, v in cells.items()]
    n = len(cells[0].result.correct) if cells else 0
    return Report(model=model, dataset=dataset, n=n, device="cpu", seed=0, gate_rule="point",
                  ids=[f"img{i:04d}" for i in range(n)], cells=list(cells), complete=complete,
                  scope=Scope(len(cells), len(cells), None, "h"), meta={"versions": {"torch": "2"}})


@pytest.fixture
def synthetic():
    """Synthetic runs from per-image outcomes (no model runs): ``synthetic.result(case_id, correct, threat=,
    attack=)`` and ``synthetic.report({case_id: correct} or [Cell], model=, dataset=, attack=, complete=)``,
    a complete whole run of tiny-cnn on digits; ``synthetic.PGD`` is the cells' default attack."""
    from types import SimpleNamespace

    return SimpleNamespace(result=_result, report=_report, PGD=PGD)
