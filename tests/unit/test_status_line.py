"""The status line: shown while a cell runs on a watched terminal, gone without a trace afterwards."""
import io

import pytest


def _render(text):
    """What a terminal shows for ``text``: backspace moves left, anything else overwrites."""
    line, pos = [], 0
    for ch in text:
        if ch == "\b":
            pos = max(0, pos - 1)
            continue
        if pos < len(line):
            line[pos] = ch
        else:
            line.append(ch)
        pos += 1
    return "".join(line).rstrip()


def test_status_line_shows_while_a_cell_runs_and_leaves_no_trace():
    from contextlib import nullcontext

    from pytest_hac.plugin.progress import StatusLine

    out = io.StringIO()
    out.write("suites/test_smoke.py ..")
    line = StatusLine(out, lambda: 80, nullcontext, total=14)
    with line.cell_running("jpeg-q50-r2-whitebox-pgd"):
        line.update("attack", 8, 20)
        shown = _render(out.getvalue())
    assert shown.startswith("suites/test_smoke.py .. [hac 0/14] jpeg-q50-r2-whitebox-pgd · ")
    assert _render(out.getvalue()) == "suites/test_smoke.py .."  # pytest's text untouched
    assert line.done == 1


class _Config:
    def __init__(self, verbose=0, tty=True, **options):
        self.options = {"verbose": verbose, "dist": "no", "numprocesses": None, **options}
        stream = io.StringIO()
        stream.isatty = lambda: tty
        writer = type("W", (), {"_file": stream, "fullwidth": 80, "width_of_current_line": 0})()
        plugins = {"terminalreporter": type("R", (), {"_tw": writer})(), "capturemanager": None}
        self.pluginmanager = type("P", (), {"get_plugin": staticmethod(plugins.get)})()

    def getoption(self, name, default=None):
        return self.options.get(name, default)

    def getini(self, name):
        return self.options.get(name, False)


@pytest.mark.parametrize("config, env, shown", [
    (_Config(), {}, True),
    (_Config(tty=False), {}, False),
    (_Config(verbose=-1), {}, False),
    (_Config(numprocesses=2, dist="load"), {}, False),
    (_Config(capture="no"), {}, False),
    (_Config(log_cli=True), {}, False),
    (_Config(), {"CI": "true"}, False),
])
def test_status_line_only_on_a_watched_terminal(config, env, shown, monkeypatch):
    from pytest_hac.plugin.progress import status_line

    monkeypatch.delenv("CI", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert (status_line(config, 3) is not None) == shown
    assert status_line(config, 3, disabled=True) is None
