"""The README stays true: its options table and its complete "Your own model" project."""
import re
from pathlib import Path

import pytest

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def test_the_options_table_is_the_declared_options():
    from pytest_hac.settings import options_table

    assert options_table() in README


def _block_after(label: str) -> str:
    """The fenced code block that follows the line ``label`` in the README."""
    match = re.search(re.escape(label) + r"\n\n```\w*\n(.*?)```", README, re.S)
    assert match, f"README has no code block after {label!r}"
    return match.group(1)


def _train_digitnet(module_path: Path, target: Path) -> None:
    """A quick checkpoint for the README's DigitNet (the example loads one from weights/)."""
    import importlib.util

    import torch

    from pytest_hac.data import digits_split

    spec = importlib.util.spec_from_file_location("readme_models", module_path)
    models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)
    torch.manual_seed(0)
    net = models.DigitNet()
    x, y = digits_split("train")
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(60):  # about 1 s on one thread; 96% on the held-out digits
        batch = torch.randint(0, len(y), (64,))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
        opt.step()
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), target)


def test_the_your_own_model_project_runs(pytester):
    models = pytester.path / "myteam/models.py"
    models.parent.mkdir()
    models.write_text(_block_after("`myteam/models.py`:"))
    (pytester.path / "myteam/__init__.py").write_text("")
    (pytester.path / "pyproject.toml").write_text(_block_after("`pyproject.toml`:"))
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests/test_robust.py").write_text(_block_after("`tests/test_robust.py`:"))
    _train_digitnet(models, pytester.path / "weights/digitnet.pt")
    result = pytester.runpytest("tests", "-p", "no:cacheprovider")  # the pyproject.toml above configures it
    result.assert_outcomes(passed=2)
    assert (pytester.path / "reports/myteam.models_build.md").is_file()


def test_the_nightly_workflow_is_valid_and_uses_real_options():
    import yaml

    from pytest_hac.__main__ import main as hac_main
    from pytest_hac.settings import OPTIONS

    text = _block_after("`.github/workflows/robustness.yml`:")
    workflow = yaml.safe_load(text)
    steps = workflow["jobs"]["robustness"]["steps"]
    assert all("uses" in s or "run" in s for s in steps) and set(workflow[True]) == {  # YAML reads `on:` as True
        "schedule", "workflow_dispatch", "pull_request"}
    flags = {o.flag for o in OPTIONS}
    assert set(re.findall(r"--hac-[a-z-]+", text)) <= flags
    assert set(re.findall(r"\bHAC_[A-Z_]+", text)) <= {o.env for o in OPTIONS}
    for command in set(re.findall(r"pytest-hac (\w+)", text)):
        with pytest.raises(SystemExit) as exit_:
            hac_main([command, "--help"])
        assert exit_.value.code == 0
