"""``pytest suites`` is the quick main job; the paper suite and the codecs suite (much longer on a CPU) run when
named."""
from __future__ import annotations

from pathlib import Path

#: Suites that run only when a command line names them (``pytest suites/paper``, ``pytest suites/codecs``).
NAMED = (Path(__file__).parent / "paper", Path(__file__).parent / "codecs")


def _named(config, folder: Path) -> bool:
    """True when a command-line argument points at ``folder`` or inside it."""
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        target = (base / arg.split("::")[0]).resolve()
        if target == folder or folder in target.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    if collection_path in NAMED and not _named(config, collection_path):
        return True  # run it with `pytest suites/paper` (docs/paper.md) or `pytest suites/codecs` (README)
    return None
