"""Options, ini keys, environment variables, --help, --hac-list and the messages for bad values."""
import pytest

PRINT_SETTINGS = """
def test_settings(hac_settings):
    print("MODEL", hac_settings.model, "SAMPLES", hac_settings.samples, "EPS", round(hac_settings.eps.linf * 255, 3))
"""


def test_cli_ini_and_env_precedence(suite, monkeypatch):
    p = suite(PRINT_SETTINGS, ini="hac_model = tiny-vit\nhac_samples = 7")
    out = p.runpytest("-s")
    out.stdout.fnmatch_lines(["*MODEL tiny-vit SAMPLES 7*"])
    monkeypatch.setenv("HAC_SAMPLES", "9")
    out = p.runpytest("-s")
    out.stdout.fnmatch_lines(["*MODEL tiny-vit SAMPLES 9*"])  # environment beats ini
    out = p.runpytest("-s", "--hac-samples=3", "--hac-model=tiny-cnn", "--hac-eps=8/255")
    out.stdout.fnmatch_lines(["*MODEL tiny-cnn SAMPLES 3 EPS 8.0*"])  # command line beats both


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hac-model=resnet5"], "*unknown model 'resnet5'. Did you mean 'resnet50'?*efficientnet-lite0*"),
        (["--hac-samples=abc"], "*--hac-samples / hac_samples takes an integer; got 'abc'*"),
        (["--hac-samples=0"], "*--hac-samples must be at least 1*"),
        (["--hac-batch-size=-2"], "*--hac-batch-size must be >= 1*"),
        (["--hac-eps=-1"], "*eps must be >= 0*"),
        (["--hac-eps=2"], "*exceeds 1*4/255*"),
        (["--hac-attack=pgdd"], "*unknown attack 'pgdd'. Did you mean 'pgd'?*"),
        (["--hac-gate=maybe"], "*--hac-gate must be one of point, lenient, confident*"),
        (["--hac-gate=ci"], "*--hac-gate=ci was renamed: use 'lenient' for its old meaning*"),
        (["--hac-soundness=loud"], "*--hac-soundness must be one of fail, warn, thorough*"),
        (["--hac-threads=0"], "*--hac-threads takes 'auto' or a positive integer*"),
        (["--hac-steps=20,queries=0"], "*--hac-steps: N and queries= must be >= 1*"),
        (["--hac-model=myteam.models:build"], "*cannot find module 'myteam.models'*pythonpath = [[]\".\"[]]*"),
        (["--hac-device=tpu"], "*--hac-device must be auto, cpu, cuda or cuda:N*"),
        (["--hac-weights-dir=/nonexistent/weights"], "*is not a folder*"),
    ],
)
def test_bad_values_are_usage_errors(suite, args, message):
    result = suite(PRINT_SETTINGS).runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_cuda_without_gpu_is_a_usage_error(suite):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    result = suite(PRINT_SETTINGS).runpytest("--hac-device=cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no CUDA GPU is visible here; use --hac-device=cpu or auto*"])


def test_bad_ini_value_names_the_key(suite):
    result = suite(PRINT_SETTINGS, ini="hac_offline = perhaps").runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*hac_offline takes true or false*"])


REGISTER_HOOK = """
import torch
from pytest_hac.codecs.base import Identity


def pytest_hac_register(registry, config):
    registry.register_model("team-net", lambda: torch.nn.Linear(3, 2), description="our own model")
    registry.register_codec("team-codec", lambda q, **_: Identity(), description="our own codec")
    registry.register_attack("team-attack", lambda model, spec: None, description="our own attack")
"""


def test_hac_list_prints_every_kind_and_exits(pytester):
    result = pytester.runpytest("--hac-list")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["models:", "*efficientnet-lite0*", "*resnet50*", "*tiny-cnn*", "*tiny-vit*", "  vit *",
                                 "data sets:", "*embedded*", "codecs:", "*jpeg*1..100*", "attacks:", "*pgd*",
                                 "threats:", "*oblivious*black-box*"])


def test_hac_list_shows_what_the_register_hook_adds(pytester):
    pytester.makeconftest(REGISTER_HOOK)
    result = pytester.runpytest("--hac-list")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*team-net*our own model*", "*team-codec*our own codec*",
                                 "*team-attack*our own attack*"])


def test_hook_registrations_end_with_their_session(pytester):
    """An in-process run (pytester, an IDE) leaves the registries as it found them: the next run can register again."""
    from pytest_hac.registry import ATTACKS, CODECS, MODELS

    pytester.makeconftest(REGISTER_HOOK)
    for _ in range(2):
        assert pytester.runpytest("--hac-list").ret == 0
        assert "team-net" not in MODELS and "team-codec" not in CODECS and "team-attack" not in ATTACKS


def test_help_lists_every_option(pytester):
    """argparse formats help texts with %: one literal '95%' used to crash `pytest --help` everywhere."""
    from pytest_hac.settings import OPTIONS

    result = pytester.runpytest("--help")
    assert result.ret == 0, result.stderr.str()
    text = result.stdout.str()
    assert "pytest-hac" in text and "--hac-list" in text and "95% interval" in text
    missing = [opt.flag for opt in OPTIONS if opt.flag not in text]
    assert missing == []
    flat = " ".join(text.split())  # argparse wraps the help text
    assert "(default: `efficientnet-lite0`)" in flat and "(default: `point`)" in flat  # defaults are shown
