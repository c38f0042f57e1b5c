"""Security: checkpoints load with ``torch.load(weights_only=True)``; model files (TorchScript, pickles)
only with ``--hac-trust-model-file``; report names stay inside their folder; offline means offline.
The rows of docs/reliability.md's Security table come from these tests.
"""
import ast
import importlib.util
import os
import socket
import sys
from pathlib import Path

import hypothesis.internal.observability  # noqa: F401  (imported once: see tests/conftest.py)
import pytest
import torch
from torch import nn

import pytest_hac
from pytest_hac.errors import HacError, WeightsNotFound
from pytest_hac.io.checkpoints import load_state_dict
from pytest_hac.report.schema import safe_stem

PACKAGE = Path(pytest_hac.__file__).parent
CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [30, 60]}, threats=["clean"])
def test_cell(hac_case, hac_evaluate):
    hac_evaluate(hac_case)
"""


def text_of(result) -> str:
    return result.stdout.str() + result.stderr.str()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- checkpoints: torch.load(weights_only=True) --------------------------------------------------------


class Evil:
    """Unpickling this runs code: it opens (creates) a file."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickled_objects_in_a_checkpoint_are_refused_and_never_run(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": Evil(sentinel)}, path)
    with pytest.raises(WeightsNotFound, match=r"evil.pth holds pickled Python objects \(io.open\) that "
                                              r"torch.load\(weights_only=True\) refuses: loading them needs "
                                              r"arbitrary code to run. Re-save it as a plain state dict"):
        load_state_dict(path)
    assert not sentinel.exists()


@pytest.mark.parametrize("content, message", [
    (b"<!DOCTYPE html><html><body>Too many requests</body></html>", "is a text/HTML file (58 bytes), not a "
                                                                    "checkpoint: a failed download. Delete it"),
    (b"", "is empty (0 bytes): a failed or interrupted download"),
    ("truncated", "The file is corrupt, truncated, or needs arbitrary code to load"),
    ("other-architecture", "does not fit the architecture: 1 keys missing (e.g. ['head.weight'])"),
    ("a-tensor", "holds a Tensor, not a state dict"),
], ids=["html-page", "empty", "truncated", "other-architecture", "not-a-dict"])
def test_bad_checkpoints_say_what_to_do(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    if content == "truncated":
        torch.save({"w": torch.randn(64, 64)}, path)
        path.write_bytes(path.read_bytes()[:600])
    elif content == "other-architecture":
        torch.save({"body.weight": torch.zeros(1)}, path)
    elif content == "a-tensor":
        torch.save(torch.zeros(3), path)
    else:
        path.write_bytes(content)
    with pytest.raises(WeightsNotFound) as info:
        load_state_dict(path, expected_keys=["body.weight", "head.weight"], what="test weights")
    assert message in str(info.value)


def test_every_torch_load_in_the_package_is_weights_only():
    """Only the trusted model-file path (--hac-trust-model-file) may unpickle arbitrary objects."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for call in ast.walk(fn):
                if not (isinstance(call, ast.Call) and ast.unparse(call.func) == "torch.load"):
                    continue
                kw = {k.arg: k.value for k in call.keywords}
                if kw.get("weights_only") is not None:
                    ok = isinstance(kw["weights_only"], ast.Constant) and kw["weights_only"].value is True
                elif None in kw:  # torch.load(path, **kwargs): the function must set weights_only=True itself
                    ok = "weights_only=True" in ast.unparse(fn).replace(" ", "") or \
                         "'weights_only':True" in ast.unparse(fn).replace(" ", "")
                else:
                    ok = False
                trusted = path.relative_to(PACKAGE).as_posix() == "models/loading.py" and fn.name == "_from_file"
                if not ok and not trusted:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{call.lineno} in {fn.name}")
    assert offenders == []


def test_downloads_happen_only_in_the_weight_loaders():
    """No HTTP client in the package; the one direct download (CompressAI's zoo URLs) checks ``offline`` first."""
    network = ("urllib", "requests", "http.client", "httpx", "socket", "download_url_to_file",
               "load_state_dict_from_url", "hf_hub_download")
    users = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        code = "\n".join(line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())
        hits = sorted(name for name in network if name in code)
        if hits:
            users[str(path.relative_to(PACKAGE))] = hits
    assert users == {"codecs/compressai_zoo.py": ["download_url_to_file"]}
    learned = (PACKAGE / "codecs/compressai_zoo.py").read_text(encoding="utf-8")
    assert "if offline:" in learned


# --- model files need --hac-trust-model-file -----------------------------------------------------------

SCRIPTED = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_size = 32
        self.fc = nn.Linear(3, 1000)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


def save(path):
    torch.jit.script(Net()).save(path)
"""


@pytest.fixture
def model_files(pytester):
    """A TorchScript file and a pickled whole module, both tiny (1000 ImageNet logits)."""
    import warnings

    pytester.makepyfile(scripted=SCRIPTED)
    pytester.syspathinsert()
    import importlib

    scripted = importlib.import_module("scripted")
    (pytester.path / "models").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, still supported
        scripted.save(str(pytester.path / "models/net.pt"))
    torch.save(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 1000)),
               pytester.path / "models/pickled.pth")
    sys.modules.pop("scripted", None)
    return pytester.path / "models"


@pytest.mark.parametrize("name", ["net.pt", "pickled.pth"])
def test_model_files_need_the_trust_flag(suite, model_files, name):
    p = suite(CELLS)
    result = p.runpytest(f"--hac-model=models/{name}", "--hac-samples=2", "-k", "q30")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # once, before any cell
    result.stderr.fnmatch_lines([f"*--hac-model='models/{name}' is a model file; loading TorchScript or pickled "
                                 "models executes code from the file. If you trust it, add --hac-trust-model-file*"])
    trusted = p.runpytest(f"--hac-model=models/{name}", "--hac-samples=2", "-k", "q30", "--hac-trust-model-file")
    trusted.assert_outcomes(passed=1)


def test_an_untrusted_pickle_never_runs(suite, tmp_path):
    sentinel = tmp_path / "pwned"
    torch.save(Evil(sentinel), tmp_path / "evil.pt")
    result = suite(CELLS).runpytest(f"--hac-model={tmp_path / 'evil.pt'}", "--hac-samples=2", "-k", "q30")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # once, before any cell
    assert "executes code from the file" in text_of(result)
    assert not sentinel.exists()


def test_unloadable_trusted_model_file_is_a_clear_error(suite, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04 definitely not a model")
    result = suite(CELLS).runpytest(f"--hac-model={tmp_path / 'junk.pt'}", "--hac-trust-model-file", "-k", "q30")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # once, before any cell
    assert "cannot load model file" in text_of(result) and "torch.jit.script(model).save" in text_of(result)


def test_names_from_models_and_baselines_stay_inside_their_folders(suite, model_files):
    p = suite(CELLS)
    result = p.runpytest("--hac-model=models/../models/net.pt", "--hac-trust-model-file", "--hac-samples=2",
                         "-k", "q30", "--hac-save-baseline=../../../escaped")
    result.assert_outcomes(passed=1)
    reports = sorted(f.name for f in (p.path / "reports").iterdir())
    # -k selected one cell of two: a selection's files never overwrite a full run's
    assert reports == ["models_.._models_net.pt.selection.html", "models_.._models_net.pt.selection.json",
                       "models_.._models_net.pt.selection.md", "models_.._models_net.pt.selection.png"]
    written = sorted(f.relative_to(p.path).as_posix() for f in p.path.rglob("*.selection.*"))
    assert written == [f"reports/{name}" for name in reports]  # in reports/, nowhere else in the project
    assert (p.path / ".hac/baselines/escaped.json").is_file()
    outside = [f for f in p.path.parent.rglob("escaped*") if p.path / ".hac/baselines" not in f.parents]
    assert outside == []


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/model.pt", "pkg.mod:build", "..", "a/b\\c"])
def test_report_names_cannot_escape_the_report_dir(name, tmp_path):
    stem = safe_stem(name)
    assert "/" not in stem and "\\" not in stem and not stem.startswith(".")
    assert (tmp_path / f"{stem}.json").resolve().parent == tmp_path.resolve()


# --- offline means offline -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind, name, message", [
    ("model", "resnet50", "weights for model 'resnet50' are not available (downloads are off: --hac-offline). "
                          "Download https://download.pytorch.org/models/resnet50-11ad3fa6.pth and place it as"),
    ("model", "vit", "weights for model 'vit' are not available (downloads are off: --hac-offline)"),
    pytest.param("model", "timm:resnet18", "would download weights, but downloads are off (--hac-offline)",
                 marks=pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm not installed")),
    ("codec", "bmshj2018-hyperprior", "downloads are off"),
])
def test_offline_forbids_every_download(tmp_path, monkeypatch, no_network, kind, name, message):
    from pytest_hac.codecs import get_codec
    from pytest_hac.models import get_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(HacError) as info:  # offline is an argument, never an environment variable of the library
        get_model(name, offline=True) if kind == "model" else get_codec(name, 1, offline=True)
    assert message in str(info.value)


def test_offline_flag_forbids_torchvision_download(suite, tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    result = suite(CELLS).runpytest("--hac-model=resnet50", "--hac-offline", "-k", "q30")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # once, before any cell
    result.stderr.fnmatch_lines(["*weights for model 'resnet50' are not available (downloads are off: --hac-offline)*"
                                 "place it as*empty-cache/hub/checkpoints/resnet50-11ad3fa6.pth*"])
    assert "HAC_OFFLINE" not in os.environ  # the flag travels as an argument


def test_a_failed_download_in_the_torch_cache_is_named(tmp_path, monkeypatch, no_network):
    from pytest_hac.models import get_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub/checkpoints/resnet50-11ad3fa6.pth"
    cached.parent.mkdir(parents=True)
    cached.write_text("<html><body>503 Service Unavailable</body></html>")
    with pytest.raises(WeightsNotFound, match="is a text/HTML file .* not a checkpoint: a failed download. Delete it"):
        get_model("resnet50", offline=True)

