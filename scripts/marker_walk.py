"""The walk of one marker argument through the package: where ``eps`` goes from ``core.cells.cases.expand`` on.

Traces ``expand`` on one marker with ``sys.setprofile`` and follows the marker's ``eps``: every call of a
pytest-hac function that receives it (as written, ``"8/255"``; parsed, ``8/255``; in a list; or in the marker's
keyword mapping) and the names it is bound to there. Counts:

* stays: such calls within one module;
* crossings: such calls from one module into another (and of those, the calls from ``core/`` into ``attacks/``);
* climbs back: control carrying it returns from ``attacks/`` to ``core/`` and ``core/`` then hands it (or a
  value parsed from it) down into ``attacks/`` again (calls into ``attacks/`` from ``core/`` after the first);
* names: the distinct variable names it is bound to, and the distinct (function, name) bindings.

Run: ``python scripts/marker_walk.py`` (prints the walk and the counts).
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import pytest_hac
from pytest_hac.core.cells.cases import expand

MARKER = {"codecs": {"jpeg": [50]}, "threats": ["clean", "oblivious", "query"], "attack": "pgd", "eps": "8/255",
          "steps": 5}
DEFAULTS = {"attack": "pgd", "eps": 4 / 255, "eps_l2": None, "steps": None, "queries": None}
RAW, PARSED = MARKER["eps"], 8 / 255
PACKAGE = Path(pytest_hac.__file__).parent


def _holds(value: object) -> bool:
    if value is RAW or (isinstance(value, float) and value == PARSED):
        return True
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return any(v is RAW or (isinstance(v, float) and v == PARSED) for v in value)
    return isinstance(value, Mapping) and value.get("eps") is RAW


def _module(code) -> str | None:
    path = Path(code.co_filename)
    if PACKAGE not in path.parents:
        return None
    rel = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def _root(module: str) -> str:
    return module.split(".")[0]


def walk() -> dict:
    calls: list[tuple[str, str, str, tuple[str, ...]]] = []  # caller module, callee module, function, args
    bindings: set[tuple[str, str]] = set()
    into_attacks = 0

    def profile(frame, event, arg):
        nonlocal into_attacks
        module = _module(frame.f_code)
        if module is None:
            return
        name = f"{module}.{frame.f_code.co_qualname}"
        if event == "call":
            code = frame.f_code
            nargs = code.co_argcount + code.co_kwonlyargcount
            args = tuple(a for a in code.co_varnames[:nargs] if _holds(frame.f_locals.get(a)))
            if not args:
                return
            caller = _module(frame.f_back.f_code) if frame.f_back is not None else None
            calls.append((caller or "(test)", module, name, args))
            if _root(module) == "attacks" and caller is not None and _root(caller) == "core":
                into_attacks += 1
        elif event == "return":
            for var, value in frame.f_locals.items():
                if _holds(value):
                    bindings.add((name, var))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sys.setprofile(profile)
        try:
            expand(MARKER, DEFAULTS)
        finally:
            sys.setprofile(None)
    stays = sum(1 for caller, callee, _, _ in calls if caller == callee)
    return {"calls": calls, "stays": stays, "crossings": len(calls) - stays - 1,  # the test's call into expand
            "into attacks": into_attacks, "climbs back": max(0, into_attacks - 1),
            "names": sorted({v for _, v in bindings}), "bindings": sorted(bindings)}


def main() -> None:
    result = walk()
    for caller, callee, name, args in result["calls"]:
        print(f"{caller:>20} -> {name} ({', '.join(args)})")
    print(f"stays {result['stays']}, crossings {result['crossings']} (from core/ into attacks/: "
          f"{result['into attacks']}), climbs back {result['climbs back']}, "
          f"names {len(result['names'])} {result['names']}, bindings {len(result['bindings'])}")


if __name__ == "__main__":
    main()
