"""The docs run: every Python block in README.md and docs/ runs in a test or says it is a fragment, every
``pytest_hac.…`` name they cite exists, and architecture.md's files exist."""
import importlib
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A fragment is marked on the line before its fence: ``<!-- fragment: why -->``.
FRAGMENT = re.compile(r"<!-- fragment: .+ -->")
#: Blocks that other tests run whole, by the line that introduces them (tests/plugin/test_readme.py).
RUN_ELSEWHERE = ("`myteam/models.py`:", "`tests/test_robust.py`:")


def _blocks(path: Path) -> list[tuple[str, str]]:
    """Each Python block of ``path`` with the paragraph right before its fence (one line)."""
    text = path.read_text(encoding="utf-8")
    out = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        paragraph = text[:match.start()].rstrip().rsplit("\n\n", 1)[-1]
        out.append((" ".join(paragraph.split()), match.group(1)))
    return out


def _block(intro: str) -> str:
    return textwrap.dedent(next(code for path in DOCS for before, code in _blocks(path) if intro in before))


def test_every_python_block_runs_somewhere_or_is_a_fragment():
    unaccounted = []
    for path in DOCS:
        for before, code in _blocks(path):
            if FRAGMENT.search(before) or any(intro in before for intro in RUN_ELSEWHERE + RUN_HERE):
                continue
            unaccounted.append(f"{path.name}: block after {before!r}")
    assert unaccounted == []


RUN_HERE = ("`hac_settings`, `hac_run`", "## Add a robustness gate to your project",
            "Write the gate, `tests/robustness/test_robust.py`:")


def test_the_plain_python_example_runs(capsys):
    exec(compile(_block(RUN_HERE[0]), "README.md", "exec"), {})
    printed = capsys.readouterr().out.split("\n")
    assert printed[0].startswith("jpeg-q50-r1-clean ") and printed[1].startswith("jpeg-q50-r1-oblivious-pgd ")
    assert 0.0 <= float(printed[1].split()[1]) <= float(printed[0].split()[1])


def test_the_robustness_gate_example_collects_the_cells_the_text_names(pytester):
    pytester.makepyfile(test_gate=_block(RUN_HERE[1]))
    result = pytester.runpytest("--hac-model=tiny-cnn", "--hac-data=digits", "--collect-only", "-q",
                                "-p", "no:cacheprovider")
    ids = re.findall(r"test_my_model_stays_robust\[([^\]]+)\]", result.stdout.str())
    # 3 qualities x 2 rounds x 3 threats, and a worst cell per defense (min_accuracy names it)
    assert len(ids) == 3 * 2 * 4 and "jpeg-q50-r3-whitebox-pgd" in ids and "jpeg-q25-r1-worst" in ids


def test_the_paper_guide_gate_collects(pytester):
    pytester.makepyfile(test_robust=_block(RUN_HERE[2]))
    result = pytester.runpytest("--hac-model=tiny-cnn", "--hac-data=digits", "--collect-only", "-q",
                                "-p", "no:cacheprovider")
    ids = re.findall(r"test_robust\[([^\]]+)\]", result.stdout.str())
    assert len(ids) == (2 + 1) * 2 * 3 and "tiny-hific-q2-r2-whitebox-pgd" in ids


def _cited(text: str) -> set[str]:
    return set(re.findall(r"\bpytest_hac(?:\.\w+)+", text))


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_pytest_hac_name_the_docs_cite_exists(path):
    missing = []
    for name in sorted(_cited(path.read_text(encoding="utf-8"))):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert missing == []


def test_the_files_architecture_md_names_exist():
    text = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w/]+\.py)`", text))
    assert named, "architecture.md names no files"
    package = ROOT / "pytest_hac"
    missing = [f for f in sorted(named) if not (package / f).is_file() and not (ROOT / f).is_file()]
    assert missing == []


def test_the_codec_table_names_every_codec():
    from pytest_hac.registry import CODECS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| codec | qualities | weights |"):]
    table = table[:table.index("\n\n")]
    assert [e.name for e in CODECS if f"`{e.name}`" not in table] == []
