"""docs/reliability.md says only what the tests check.

Each table row names the tests that check it (``folder/test_file.py::test_name``, relative to tests/), and
every quoted outcome in the row (a `code span` in its Outcome column) must be among the string literals of
one of those test functions: its body, its decorators (the parametrize lists), and the module-level
constants the body or the decorators name. A fragment that is a Python name (`HacError`, `approximate`)
may instead be a name that the function uses (``except HacError``, ``codec.approximate(x)``). A fragment
that only occurs elsewhere in the file (in another test, a helper or a comment) does not count.
"""
import ast
import re
from pathlib import Path
from typing import NamedTuple

TESTS = Path(__file__).resolve().parents[1]
DOC = TESTS.parent / "docs" / "reliability.md"
#: A test named anywhere in the doc: ``unit/test_engine_reuse.py::test_x``.
REFERENCE = re.compile(r"\b((?:\w+/)*test_\w+\.py)::(test_\w+)")


def _module_constants(tree: ast.Module) -> dict[str, ast.AST]:
    """Module-level ``NAME = value`` (and ``NAME: type = value``) assignments, by name."""
    constants: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            constants[node.target.id] = node.value
    return constants


class Asserted(NamedTuple):
    """What one test function asserts, as far as the doc check reads it."""

    text: str  #: its string literals, one per line
    names: frozenset[str]  #: the names and attributes it uses

    def covers(self, fragment: str) -> bool:
        fragment = fragment.replace("\\", "")
        return fragment in self.text or (fragment.isidentifier() and fragment in self.names)


def asserted(path: Path, name: str) -> Asserted | None:
    """The string literals and names of test function ``name`` in ``path`` (None if it has no such test).

    Taken from the function's decorators, default arguments and body, and from the module-level constants
    these name (and the constants those name). Implicitly concatenated literals are one literal; fnmatch
    escapes (``[[]``, ``[]]``) and regex backslashes are dropped, so a fragment reads as the user sees it.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    test = next((node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.name == name), None)
    if test is None:
        return None
    constants = _module_constants(tree)
    todo = [*test.decorator_list, *test.args.defaults, *test.args.kw_defaults, *test.body]
    texts, names, followed = [], set(), set()
    while todo:
        for node in ast.walk(todo.pop()):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                texts.append(node.value)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Name):
                names.add(node.id)
                if node.id in constants and node.id not in followed:
                    followed.add(node.id)
                    todo.append(constants[node.id])
    text = "\n".join(texts).replace("[[]", "[").replace("[]]", "]").replace("\\", "")
    return Asserted(text, frozenset(names))


def _resolve(file: str, name: str) -> Asserted | None:
    """What a test named relative to tests/ (a leading ``tests/`` allowed) asserts; None if there is no such test."""
    path = TESTS / file.removeprefix("tests/")
    return asserted(path, name) if path.is_file() else None


def _table_rows(doc: str) -> list[tuple[str, str]]:
    """(outcome, checked-by) of every table row below a header of Input, Fault or Threat."""
    rows = []
    for line in doc.splitlines():
        if not line.startswith("| ") or line.startswith(("| Input", "| Fault", "| Threat")):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 3, f"a row of three columns: {line!r}"
        rows.append((cells[1], cells[2]))
    return rows


def test_the_check_reads_only_the_named_test(tmp_path):
    """The check itself: the function's literals, its parametrize lists and the constants it names; nothing else."""
    module = tmp_path / "test_example.py"
    module.write_text('''
import pytest

MESSAGE = "from a constant"
NESTED = {"key": MESSAGE + "!"}
UNUSED = "from a constant no test names"


def helper():
    return "from a helper"


@pytest.mark.parametrize("text", ["from " "parametrize", r"escaped \\(regex\\)"])
def test_one(text, codec):
    try:
        assert NESTED and "from the body" in text
    except KeyError:
        return
    assert helper() and codec.approximate(text)
    # "from a comment"


def test_two():
    assert "from another test" and ValueError
''')
    one = asserted(module, "test_one")
    for fragment in ("from parametrize", "escaped (regex)", "escaped \\(regex\\)", "from the body", "from a constant",
                     "key", "KeyError", "approximate", "helper"):
        assert one.covers(fragment), fragment
    for fragment in ("from a constant no test names", "from a helper", "from a comment", "from another test",
                     "ValueError", "UNUSED", "from the body and more"):
        assert not one.covers(fragment), fragment
    assert asserted(module, "test_three") is None


def test_reliability_doc_matches_the_tests():
    """Every quoted outcome in docs/reliability.md's tables is asserted by a test named in its row."""
    doc = DOC.read_text(encoding="utf-8")
    rows = _table_rows(doc)
    assert len(rows) > 60
    problems = []
    for outcome, checked in rows:
        refs = checked.split(", ")
        tests = []
        for ref in refs:
            match = REFERENCE.fullmatch(ref)
            test = _resolve(match[1], match[2]) if match else None
            if test is None:
                problems.append(f"no test {ref}")
            else:
                tests.append(test)
        for fragment in re.findall(r"`([^`]+)`", outcome):
            if tests and not any(test.covers(fragment) for test in tests):
                problems.append(f"{checked}: {fragment!r} is not asserted there")
    assert problems == []


def test_every_test_the_reliability_doc_names_exists():
    """Tests named in the prose (the determinism section) exist too, not only those of the tables."""
    doc = DOC.read_text(encoding="utf-8")
    named = REFERENCE.findall(doc)
    assert len(named) > 60
    missing = [f"{file}::{name}" for file, name in sorted(set(named)) if _resolve(file, name) is None]
    assert missing == []
