"""``pytest suites`` is the quick main job; the paper suite (much longer on a CPU) runs when named."""
from __future__ import annotations

from pathlib import Path

PAPER = Path(__file__).parent / "paper"


def _named(config, folder: Path) -> bool:
    """True when a command-line argument points at ``folder`` or inside it."""
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        target = (base / arg.split("::")[0]).resolve()
        if target == folder or folder in target.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if collection_path == PAPER and not _named(config, PAPER):
        return True  # run it with `pytest suites/paper` (see docs/paper.md)
    return None
