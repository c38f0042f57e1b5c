"""The package's layers point down and its modules import each other without cycles (docs/architecture.md).

Every import counts, those under ``if TYPE_CHECKING:`` included: a module that needs another's type
for its hints depends on it as much as one that calls it (a Protocol, or the type one layer down,
breaks such a dependency)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_hac"

#: Layer of each top-level part, lowest first: a module may import its own layer and those below.
LAYERS = [
    {"errors", "formats"},
    {"registry", "io"},
    {"attacks", "codecs", "models", "data"},
    {"core"},
    {"setting_values", "settings", "report"},
    {"run"},
    {"plugin", "__main__"},
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, source: str | None = None) -> set[str]:
    """Every pytest_hac module ``path`` imports (function-level and ``TYPE_CHECKING`` imports included)."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("pytest_hac"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)  # "from . import probes"
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pytest_hac"))
    modules = {_module(p) for p in PACKAGE.rglob("*.py")}
    return {t for t in found if t in modules and t != module}


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def _layer(module: str) -> int:
    part = _part(module)
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def test_layers_point_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        if module == "pytest_hac":
            continue
        for target in _imports(path):
            if target != "pytest_hac" and _layer(target) > _layer(module):
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_no_import_cycles():
    graph = {_module(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    # a package imports its own submodules (re-exports); a submodule importing its package's
    # __init__ back is a cycle only through what __init__ imports, which the walk below sees
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package's own submodules
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_type_checking_imports_count():
    """The walk sees imports for type hints only: they are dependencies too."""
    source = "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .engine import Engine\n"
    assert _imports(PACKAGE / "core" / "workload.py", source) == {"pytest_hac.core.engine"}


def test_no_two_modules_import_each_other():
    graph = {_module(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    mutual = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if a < b and a in graph.get(b, ()))
    assert mutual == []


def test_every_part_has_a_layer():
    parts = {_part(_module(p)) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert parts <= set().union(*LAYERS)


#: The most lines a module and a class may hold: past these a room holds more than one job.
MODULE_LINES, CLASS_LINES = 400, 250


def test_rooms_stay_small():
    big = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MODULE_LINES:
            big.append(f"{_module(path)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > CLASS_LINES:
                big.append(f"{_module(path)}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert big == []
