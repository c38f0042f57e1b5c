"""Every marker in suites/ and tests/ expands to the cells recorded before the marker became a typed value.

The markers are read from the source (decorators, ``expand`` calls and pytester snippets); each is expanded
under a few sets of run defaults, and every cell's id, identity, threshold, thoroughness and attack (as the
report writes it) must equal ``fixtures/marker_cells.json``, as must every refusal's message. Rerecord (only
for an intended change of ids) with ``python tests/unit/test_marker_cells_recorded.py --record``.
"""
from __future__ import annotations

import ast
import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).parent / "fixtures" / "marker_cells.json"
#: Run defaults as ``Settings.marker_defaults`` gives them: none (scripts), the options' defaults, and options set.
DEFAULTS = {
    "none": {},
    "options": {"attack": "pgd", "eps": 4 / 255, "eps_l2": None, "steps": None, "queries": None},
    "set": {"attack": "apgd", "eps": 8 / 255, "eps_l2": 0.5, "steps": 20, "queries": 1000},
}


def _constants(tree: ast.Module) -> dict[str, Any]:
    """A module's top-level names bound to literals (``RATES = {...}``, ``STEPS = 2``)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = _literal(node.value, out)
            except ValueError:
                pass
    return out


def _literal(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):  # 8 / 255
        return _literal(node.left, names) / _literal(node.right, names)
    if isinstance(node, ast.Dict):
        return {_literal(k, names): _literal(v, names) for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, names) for e in node.elts]
    return ast.literal_eval(node)


def _is_marker(call: ast.Call) -> bool:
    f = call.func
    return isinstance(f, ast.Attribute) and f.attr == "hac" and isinstance(f.value, ast.Attribute) \
        and f.value.attr == "mark"


def _markers_in(source: str, where: str, out: dict[str, tuple[dict, dict | None]]) -> None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    names = _constants(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "mark.hac(" in node.value:
            _markers_in(node.value, f"{where}:{node.lineno}", out)
        if not isinstance(node, ast.Call):
            continue
        try:
            if _is_marker(node) and not node.args:
                kwargs = {k.arg: _literal(k.value, names) for k in node.keywords if k.arg}
                out[f"{where}:{node.lineno}"] = (kwargs, None)
            elif isinstance(node.func, ast.Name) and node.func.id == "expand" and len(node.args) == 2:
                out[f"{where}:{node.lineno}"] = (_literal(node.args[0], names), _literal(node.args[1], names))
        except (ValueError, TypeError, ZeroDivisionError, SyntaxError):
            continue  # a marker built at run time (a parametrized argument): not recorded


def markers() -> dict[str, tuple[dict, dict | None]]:
    """Every literal marker (and ``expand`` call) in suites/ and tests/, by file and line."""
    out: dict[str, tuple[dict, dict | None]] = {}
    for path in sorted([*ROOT.joinpath("suites").rglob("*.py"), *ROOT.joinpath("tests").rglob("*.py")]):
        _markers_in(path.read_text(), str(path.relative_to(ROOT)), out)
    return out


def cells(kwargs: dict, defaults: dict) -> Any:
    """The marker's cells as text, or the refusal's message."""
    from pytest_hac.core.cells.cases import expand
    from pytest_hac.errors import HacError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cases = expand(kwargs, defaults)
    except HacError as e:
        return {"error": str(e)}
    full = [[c.id, c.identity, c.threshold, c.thorough, None if c.attack is None else c.attack.as_dict(),
             None if c.attack is None else c.attack.describe()] for c in cases]
    # the ids as they are (a change shows which), the rest as a digest (the paper suite has thousands of cells)
    return {"ids": [c.id for c in cases], "sha256": hashlib.sha256(json.dumps(full).encode()).hexdigest()}


def expanded() -> dict[str, Any]:
    """Each marker's cells under each set of defaults, keyed by the marker's text (not its line: tests move)."""
    return {f"{kwargs!r} [{name}]": cells(kwargs, dict(defaults) if own is None else own)
            for kwargs, own in markers().values()
            for name, defaults in (DEFAULTS.items() if own is None else [(repr(own), own)])}


def test_markers_are_found():
    found = markers()
    assert len(found) > 80 and any(w.startswith("suites/paper") for w in found)


def test_every_marker_expands_to_the_recorded_cells():
    recorded = json.loads(RECORDED.read_text())
    now = json.loads(json.dumps(expanded()))
    assert sorted(now) == sorted(recorded)
    for key, value in now.items():
        assert value == recorded[key], key


if __name__ == "__main__" and "--record" in sys.argv:
    RECORDED.write_text(json.dumps(expanded(), indent=1, sort_keys=True) + "\n")
    print(f"recorded {RECORDED}")
elif __name__ == "__main__":
    pytest.main([__file__, "-q"])
