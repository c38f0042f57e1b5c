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
    assert _imports(PACKAGE / "core" / "engine" / "workload.py", source) == {"pytest_hac.core.engine.engine"}


#: The rooms of ``core/``, lowest first: what a cell is, how it is decided, how it is measured. A room may import its
#: own and those below, never one above (the engine reads cells and judges them; a judgement never runs the engine).
CORE_ROOMS = ["cells", "judge", "engine"]


def test_core_is_three_rooms_that_point_down():
    core = PACKAGE / "core"
    assert sorted(p.name for p in core.iterdir() if p.suffix == ".py") == ["__init__.py"]
    assert sorted(p.name for p in core.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(CORE_ROOMS)
    upward = []
    for path in sorted(core.rglob("*.py")):
        room = path.relative_to(core).parts[0]
        if room == "__init__.py":
            continue
        for target in _imports(path):
            parts = target.split(".")
            if parts[:2] == ["pytest_hac", "core"] and len(parts) > 2:
                if CORE_ROOMS.index(parts[2]) > CORE_ROOMS.index(room):
                    upward.append(f"{_module(path)} imports {target}")
    assert upward == []


def test_cells_and_judge_import_no_torch():
    """What a cell is and how it is decided work without torch: the plugin collects and decides (merges, compares,
    trends) without loading it."""
    import subprocess
    import sys

    modules = [_module(p) for room in ("cells", "judge") for p in sorted((PACKAGE / "core" / room).rglob("*.py"))]
    code = (f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            "print(sorted(k for k in sys.modules if k == 'torch' or k.startswith('torch.'))[:3])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.strip()
    assert out == "[]"


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
