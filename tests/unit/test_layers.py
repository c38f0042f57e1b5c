"""The package's layers point down and its modules import each other without cycles (docs/architecture.md)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_hac"

#: Layer of each top-level part, lowest first: a module may import its own layer and those below.
LAYERS = [
    {"errors"},
    {"registry", "io"},
    {"attacks", "codecs", "models", "data"},
    {"core"},
    {"settings", "report"},
    {"run"},
    {"plugin", "__main__"},
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every pytest_hac module ``path`` imports (function-level imports included)."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for block in [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]:
        block.body = []  # imports for type hints only: no runtime dependency
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


def test_every_part_has_a_layer():
    parts = {_part(_module(p)) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert parts <= set().union(*LAYERS)
